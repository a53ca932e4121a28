//! Whether a backend can run on this machine, asked without aborting.

use std::panic::{catch_unwind, AssertUnwindSafe};

use burn::tensor::{backend::Backend, ElementConversion, Tensor};

/// Whether `device` of backend `B` starts and round-trips a tensor.
///
/// GPU backends start their runtime on first use and panic where it cannot
/// start (WGPU with no Vulkan, Metal or DirectX adapter; CUDA with no driver).
/// This makes and reads back one small tensor under [`catch_unwind`], so a
/// program or test can pick another backend, or skip, instead of aborting.
/// The runtime's own panic message is still printed by the panic hook.
///
/// # Example
///
/// ```
/// use burn::backend::Flex;
///
/// assert!(burn_ternary::device_available::<Flex>(&Default::default()));
/// ```
pub fn device_available<B: Backend>(device: &B::Device) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        Tensor::<B, 1>::from_floats([1.0, 2.0], device)
            .sum()
            .into_scalar()
    }))
    .is_ok_and(|sum| (sum.elem::<f32>() - 3.0).abs() < 1e-6)
}
