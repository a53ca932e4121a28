# Sourced by scripts/gpu/h200_wgpu.sh: unpacks the carried Vulkan loader and GL dispatch packages (.gl/*.deb) and points the loader at NVIDIA's manifest; usage: source scripts/gpu/gpu_vulkan.sh
# The GPU machine has NVIDIA's Vulkan driver but no loader; see h200_wgpu.sh for the packages.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -e "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
