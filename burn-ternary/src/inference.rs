//! Ternary modules for inference only: [`without_update_memory`] drops the
//! update memory (one byte per weight, four times the packed trits) that
//! only training reads, so a loaded model holds its trits, scale codes and
//! float parts alone.

use burn::{
    module::{Module, ModuleMapper, Param},
    tensor::{backend::Backend, Int, Tensor},
};

/// `module` with the update memory of every [`TernaryWeight`](crate::TernaryWeight)
/// dropped (see [`TernaryWeight::without_update_memory`](crate::TernaryWeight::without_update_memory)).
/// Outputs are unchanged; the [`TernaryOptimizer`](crate::TernaryOptimizer)
/// refuses such a module, naming the weight.
///
/// ```
/// use burn::backend::Flex;
/// use burn_ternary::{audit, without_update_memory, TernaryLinearConfig};
///
/// let device = Default::default();
/// let layer = TernaryLinearConfig::new(64, 32).init::<Flex>(&device);
/// let before = audit(&layer).ternary_state_bytes;
/// let layer = without_update_memory(layer);
/// assert!(audit(&layer).ternary_state_bytes < before);
/// assert!(!layer.weight.has_update_memory());
/// ```
pub fn without_update_memory<B: Backend, M: Module<B>>(module: M) -> M {
    module.map(&mut MemoryDropper { path: Vec::new() })
}

struct MemoryDropper {
    /// `(field name, container type)` of the modules entered.
    path: Vec<(String, String)>,
}

impl<B: Backend> ModuleMapper<B> for MemoryDropper {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_int<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D, Int>>,
    ) -> Param<Tensor<B, D, Int>> {
        let is_memory = matches!(self.path.last(), Some((name, container))
            if name == "memory" && container == crate::visit::WEIGHT_CONTAINER);
        if !is_memory || D != 2 {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let mut shape = tensor.dims();
        shape[D - 1] = 0;
        let empty = Tensor::<B, D, Int>::empty(shape, &tensor.device()).cast(tensor.dtype());
        Param::from_mapped_value(id, empty, mapper)
    }
}
