"""The floor plan: no import cycles between the project's modules, counting imports inside
functions too (a lazy import is still a dependency, and hides a cycle until it runs)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("video2numpy", "clip_video_encode", "converters", "jobs")


def module_files() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports, anywhere in its code."""
    base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parts = parts[: len(parts) - node.level + 1]
                module = ".".join(parts + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    targets = set()
    for module in found:
        while module and module not in modules:  # a name inside a module: the module
            module = module.rsplit(".", 1)[0] if "." in module else None
        if module and module != name:
            targets.add(module)
    return targets


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    modules = module_files()
    assert "clip_video_encode.cli" in modules and "video2numpy.reader" in modules
    graph = {name: imported(name, path, modules) for name, path in modules.items()}
    assert "clip_video_encode.execute.ray_lane" in graph["clip_video_encode.execute.ray_pipelines"]
    assert cycles(graph) == []


# The encode pipeline's layers (each package's __init__ docstring says the same): what each
# may import of clip_video_encode besides itself. The run reads one way, plan -> execute ->
# commit: the plan never knows who executes or commits it, the commit path never who feeds it.
LAYERS = {
    "models": set(),
    "destination": set(),
    "plan": {"models", "destination"},
    "commit": {"plan", "destination"},
    "execute": {"models", "destination", "plan", "commit"},
}


def layer_breaches(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in graph.items():
        parts = module.split(".")
        if parts[0] != "clip_video_encode" or len(parts) < 2 or parts[1] not in LAYERS:
            continue
        for target in sorted(targets):
            other = target.split(".")
            if other[0] != "clip_video_encode" or len(other) < 2 or other[1] == parts[1]:
                continue
            if other[1] not in LAYERS[parts[1]]:
                out.append(f"{module} imports {target}")
    return out


def test_the_layer_checker_finds_a_breach():
    graph = {"clip_video_encode.plan.a": {"clip_video_encode.commit.b", "video2numpy.c"},
             "clip_video_encode.commit.b": {"clip_video_encode.plan.a"}}  # fmt: skip
    assert layer_breaches(graph) == ["clip_video_encode.plan.a imports clip_video_encode.commit.b"]


def test_the_encode_pipeline_imports_one_way():
    modules = module_files()
    graph = {name: imported(name, path, modules) for name, path in modules.items()}
    assert all(f"clip_video_encode.{layer}" in modules for layer in LAYERS)
    assert layer_breaches(graph) == []


def is_cli(module: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return leaf == "cli" or leaf.endswith("_cli")


# Entry points that run the console scripts as a user would (the demo, the Ray job).
RUNS_COMMANDS = {"video2numpy.demo", "jobs.encode"}


def test_command_line_modules_depend_on_the_library_not_on_each_other():
    """A console script's module may import the library and its own tool's subcommands (the
    ``eval`` of summaries), never another tool's command line: what two commands share lives
    in a library module (``video2numpy/options.py``, ``clip_video_encode/plan/options.py``)."""
    modules = module_files()
    breaches = []
    for name, path in modules.items():
        if name in RUNS_COMMANDS:
            continue
        for target in imported(name, path, modules):
            same_tool = target.rsplit(".", 1)[0] == name.rsplit(".", 1)[0] and is_cli(name)
            if is_cli(target) and not same_tool:
                breaches.append(f"{name} imports {target}")
    assert breaches == []


def test_no_module_has_two_jobs_by_its_length():
    """A module past ~500 lines has two jobs: split it by job (550 leaves room for a docstring
    growing, not for a second job)."""
    long = {name: n for name, path in module_files().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 550}  # fmt: skip
    assert long == {}
