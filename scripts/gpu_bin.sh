# Sourced by the scripts/h200_*.sh scripts on the GPU machine (no Rust there):
# unpacks the test executable built here ($BIN_XZ, an xz file under the
# carried .gpu/ folder) to .gpu/cube_kernels and records the machine, and the
# commit the executable was built from (a COMMIT file beside $BIN_XZ, written
# when packing: the GPU machine's copy of the checkout has no history), in
# $OUT/gpu.txt.
BIN_XZ=${BIN_XZ:?set BIN_XZ to the xz-packed cube_kernels executable} python3 - <<'PY'
import lzma, os, shutil
with lzma.open(os.environ["BIN_XZ"]) as packed, open(".gpu/cube_kernels", "wb") as out:
    shutil.copyfileobj(packed, out)
PY
chmod +x .gpu/cube_kernels
{
  date -u
  echo "built from commit $(cat "$(dirname "$BIN_XZ")/COMMIT" 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
} > "$OUT/gpu.txt"
