# Sourced by the scripts/h200_*.sh scripts that run WGPU on the GPU machine,
# which has NVIDIA's Vulkan driver but no loader: unpacks the carried Debian
# packages of the loader and GL dispatch libraries (.gl/*.deb, see
# scripts/h200_wgpu.sh) and points the loader at the driver's manifest.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -e "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
