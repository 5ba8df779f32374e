#!/usr/bin/env bash
# Checks for the tools the tests need and installs what it can. It fails loudly rather than letting
# a test skip: a skipped Secrets Manager test hides exactly the bugs it exists for.
set -euo pipefail

missing=()
need_pip=()
command -v go >/dev/null || missing+=("go (https://go.dev/dl/)")
command -v moto_server >/dev/null || need_pip+=("moto[server]")
command -v cfn-lint >/dev/null || need_pip+=("cfn-lint")

if ((${#need_pip[@]})); then
  if command -v pip >/dev/null || command -v pip3 >/dev/null; then
    pip=$(command -v pip || command -v pip3)
    echo "installing ${need_pip[*]} with $pip"
    if ! "$pip" install --quiet "${need_pip[@]}"; then
      echo "pip could not install ${need_pip[*]}" >&2
    fi
    hash -r
  fi
  command -v moto_server >/dev/null || missing+=('moto_server (pip install "moto[server]")')
  command -v cfn-lint >/dev/null || missing+=("cfn-lint (pip install cfn-lint)")
fi

# apt_install PACKAGE: install a Debian package when apt-get is there (with sudo when not root).
apt_updated=
apt_install() {
  command -v apt-get >/dev/null || return 0
  local sudo=()
  if ((EUID != 0)) && command -v sudo >/dev/null; then sudo=(sudo); fi
  echo "installing $1 (apt-get install $1)"
  if [[ -z $apt_updated ]]; then "${sudo[@]}" apt-get update -qq && apt_updated=1; fi
  "${sudo[@]}" apt-get install -y -qq "$1" >/dev/null || echo "apt-get could not install $1" >&2
  hash -r
}

# promtool checks and unit-tests deploy/prometheus/rules.yaml. Debian's prometheus package ships
# it (on a host that runs systemd, installing the package also starts a Prometheus server on :9090;
# CI containers do not run one).
if ! command -v promtool >/dev/null; then
  apt_install prometheus
  command -v promtool >/dev/null || missing+=("promtool (apt-get install prometheus, or a Prometheus release from https://prometheus.io/download/)")
fi

# `scripts/test-deps.sh bench` (make bench) also needs nginx and wrk: the gateway's benchmark
# compares it with nginx under wrk's load. No test of `make test` needs them.
if [[ ${1:-} == bench ]]; then
  for tool in nginx wrk; do
    command -v "$tool" >/dev/null || apt_install "$tool"
    command -v "$tool" >/dev/null || missing+=("$tool (apt-get install $tool)")
  done
fi

# The Python consumer recipe (examples/python) is run by the tests with boto3 and requests.
if ! python3 -c 'import boto3, requests' 2>/dev/null; then
  if command -v pip >/dev/null || command -v pip3 >/dev/null; then
    "$(command -v pip || command -v pip3)" install --quiet boto3 requests || echo "pip could not install boto3 requests" >&2
  fi
  python3 -c 'import boto3, requests' 2>/dev/null || missing+=("python3 with boto3 and requests (pip install boto3 requests)")
fi

# The Java consumer recipe (examples/java) is compiled (javac --release 11) and run by the tests
# with Debian's Jackson; the AWS SDK, which apt does not have, is stood in for by test classes.
if ! command -v javac >/dev/null || ! command -v java >/dev/null; then
  apt_install default-jdk-headless
  if ! command -v javac >/dev/null || ! command -v java >/dev/null; then
    missing+=("javac and java, JDK 11 or later (apt-get install default-jdk-headless)")
  fi
fi
jackson=(/usr/share/java/jackson-databind.jar /usr/share/java/jackson-core.jar /usr/share/java/jackson-annotations.jar)
if ! ls "${jackson[@]}" >/dev/null 2>&1; then
  apt_install libjackson2-databind-java
  ls "${jackson[@]}" >/dev/null 2>&1 || missing+=("Jackson in /usr/share/java (apt-get install libjackson2-databind-java)")
fi

if ((${#missing[@]})); then
  echo "the tests need these tools, which are missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
# The versions come from the packages' metadata: importing moto or running `cfn-lint --version`
# costs two to three seconds of every `make test`.
pyversion() { python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null; }
echo "test tools: $(go version | cut -d' ' -f3), moto_server $(pyversion moto || echo '?'), cfn-lint $(pyversion cfn-lint || cfn-lint --version 2>/dev/null | sed 's/^cfn-lint //'), promtool $(promtool --version 2>&1 | sed -n '1s/^promtool, version \([^ ]*\).*/\1/p'), $(javac -version 2>&1)"
