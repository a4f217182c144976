#!/bin/sh
# Renders an AutoQuantize sweep report (report.html from `quantforge sweep`) to a PNG with
# headless Chromium, to check that it is legible or to attach it to an issue.
#   tools/render_report.sh REPORT_DIR/report.html OUT.png [WIDTH HEIGHT]
# Needs chromium (Debian package `chromium`); exits 77 when it is not installed, so a test can
# report a skip. The page is self-contained: no network is touched.
set -eu
if [ "$#" -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH HEIGHT]" >&2
  exit 2
fi
html=$1
png=$2
width=${3:-1100}
height=${4:-1500}
browser=""
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null 2>&1; then
    browser=$candidate
    break
  fi
done
if [ -z "$browser" ]; then
  echo "render_report.sh: chromium not found; skipping" >&2
  exit 77
fi
if [ ! -f "$html" ]; then
  echo "render_report.sh: $html does not exist" >&2
  exit 1
fi
abs_html=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
case "$png" in
  /*) abs_png=$png ;;
  *) abs_png=$(pwd)/$png ;;
esac
# The file path as a file:// URL with '#', '?', '%' and spaces percent-encoded, so such a
# directory name still reaches the right file (python3's pathlib does the encoding).
file_url() {
  python3 -c 'import pathlib, sys; print(pathlib.Path(sys.argv[1]).as_uri())' "$1"
}
# A private profile directory: headless Chromium writes one, and a shared one can be locked.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$abs_png"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$profile" --window-size="$width,$height" \
  --screenshot="$abs_png" "$(file_url "$abs_html")" >/dev/null 2>&1 || true
if [ ! -s "$abs_png" ]; then
  echo "render_report.sh: chromium wrote no screenshot to $abs_png" >&2
  exit 1
fi
echo "$abs_png"
