#!/usr/bin/env bash
# A virtualenv with LAION's clip-video-encode 1.3.0, for bench/encode.py --sections c.
#
# 1.3.0 pins torch<2, numpy<2, webdataset<0.2, fsspec==2022.1.0 and pyarrow<8, which do not
# install (or import) on Python 3.11, so its dependencies are picked by hand with --no-deps:
# the newest releases its code still runs with. torch and torchvision are not installed again:
# a .pth file appends this project's environment (VENV, default .venv) to the path, so both
# tools run on the very same torch, and the packages installed here shadow the newer ones.
set -euo pipefail
VENV=${VENV:-.venv}
DEST=${1:-bench/_cve130}
python3 -m venv "$DEST"
"$DEST/bin/pip" install -q --no-deps clip-video-encode==1.3.0 video2numpy==2.3.0 \
  "open_clip_torch<3" "numpy<2" "webdataset==0.2.86" "fire<0.5" "pandas<2" \
  "fsspec==2022.1.0" "pyarrow<15" opencv-python-headless youtube_dl ftfy regex tqdm \
  termcolor six huggingface_hub wcwidth pyyaml filelock packaging requests urllib3 idna \
  certifi charset_normalizer braceexpand typing_extensions python-dateutil pytz safetensors timm
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
own=$("$DEST/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$site" > "$own/zz_torch_from_project.pth"
"$DEST/bin/python" -c "import clip_video_encode, torch, numpy; print('clip-video-encode 1.3.0 ready:', torch.__version__, 'numpy', numpy.__version__)"
