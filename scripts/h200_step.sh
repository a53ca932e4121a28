# Sourced by the round scripts (scripts/h200_r18.sh, h200_r19.sh) on the GPU
# machine, from the repository root: the output folder check, the pattern
# that picks a check's summary lines, and `left N`, the seconds for the next
# step (N, or what is left before END, default 560, if less), so that a
# call's steps end inside the device tool's limit.
: "${OUT:?set OUT to the output folder}"
summary="cases passed|cases failed|differ|test result|panicked"
END=${END:-560}
left() { local t=$((END - SECONDS)); [ "$t" -lt "$1" ] && echo "$t" || echo "$1"; }
