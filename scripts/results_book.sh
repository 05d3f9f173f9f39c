#!/usr/bin/env bash
# Re-run every CPU study of the results book, one after another, and rebuild the book from the new files:
#   scripts/results_book.sh            (from the repository root, in the venv: each study at most an hour on 2 cores)
# A study is a page of the book (docs/results/NAME/) whose sweep.json records the commands that ran it; this runs those
# commands again into sweeps/NAME (finished runs there are skipped: delete the folder for a fresh run), writes the
# page with `fpt report sweeps/NAME out=docs/results/NAME`, and `fpt book` rewrites the README's tables from the pages.
# A new study joins the book by running it once and writing its page the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
fpt data mnist out=data/digits >/dev/null  # the real 8x8 digits as MNIST IDX files (the studies' data.root=data/digits)
for page in docs/results/*/sweep.json; do
  name=$(basename "$(dirname "$page")")
  start=$(date +%s)
  python -c "import json, sys; print('\n'.join(json.load(open(sys.argv[1]))['commands']))" "$page" | while read -r command; do
    echo "== $name: $command"
    eval "$command out=sweeps/$name" </dev/null
  done
  fpt report "sweeps/$name" "out=docs/results/$name"
  echo "== $name: $(( ($(date +%s) - start) / 60 )) minutes"
done
fpt book
