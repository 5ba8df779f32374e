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

if ((${#missing[@]})); then
  echo "the tests need these tools, which are missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "test tools: $(go version | cut -d' ' -f3), moto_server $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?'), $(cfn-lint --version 2>/dev/null)"
