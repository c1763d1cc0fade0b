#!/bin/sh
# Debian packages rgflow needs: dataset-fashion-mnist (real images at hand offline),
# chromium (the JupyterLab browser test) and g++ (torch.compile on the CPU: --compile and its
# tests). Installs them when run as root with apt-get.
set -u
missing=""
[ -d /usr/share/datasets/fashion-mnist ] || missing="$missing dataset-fashion-mnist"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || echo "warning: apt-get could not install$missing; the tests that need them skip."
else
  echo "note: not installing$missing (needs root and apt-get): run"
  echo "  sudo apt-get install$missing"
  echo "the Fashion-MNIST model's data figures, the browser test and the compile tests skip"
  echo "without them."
fi
exit 0
