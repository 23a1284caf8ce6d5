#!/bin/sh
# A commit subject is `area: what changed`, at most 72 characters, so `git log --oneline` scans.
subject=$(head -n 1 "$1")
length=$(printf '%s' "$subject" | wc -m)
if [ "$length" -gt 72 ]; then
  echo "commit subject is $length characters (at most 72): $subject" >&2
  exit 1
fi
case "$subject" in
  *": "*) ;;
  *) echo "commit subject is not \`area: what changed\`: $subject" >&2; exit 1 ;;
esac
