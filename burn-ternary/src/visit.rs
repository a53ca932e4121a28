//! Finds the [`TernaryWeight`](crate::TernaryWeight)s inside any module,
//! and the float tensors beside them.

use burn::{
    module::{Module, ModuleVisitor, Param, ParamId},
    tensor::{backend::Backend, Int, Tensor},
};

pub(crate) const WEIGHT_CONTAINER: &str = "Struct:TernaryWeight";

/// Handles on one ternary weight's state, found by [`collect`].
#[derive(Clone, Debug)]
pub struct TernaryWeightState<B: Backend> {
    /// Dotted path of the weight in the module tree.
    pub path: String,
    /// Packed trits.
    pub trits: (ParamId, Tensor<B, 2, Int>),
    /// Packed update memory.
    pub memory: (ParamId, Tensor<B, 2, Int>),
    /// Scale codes.
    pub scale_code: (ParamId, Tensor<B, 1, Int>),
    /// Id of the gradient port.
    pub port: ParamId,
    /// Logical `[rows, cols]`.
    pub dims: [usize; 2],
}

impl<B: Backend> TernaryWeightState<B> {
    /// Whether the weight holds its update memory (see
    /// [`TernaryWeight::has_update_memory`](crate::TernaryWeight::has_update_memory)).
    pub fn has_update_memory(&self) -> bool {
        self.dims[0] * self.dims[1] == 0 || self.memory.1.dims()[1] > 0
    }
}

/// A float tensor outside the ternary state.
#[derive(Clone, Debug)]
pub struct FloatState {
    /// Dotted path in the module tree.
    pub path: String,
    /// Number of elements.
    pub numel: usize,
    /// Bytes of storage.
    pub bytes: usize,
    /// Whether autodiff tracks it (only observable on an autodiff backend).
    pub trainable: bool,
}

/// Everything [`collect`] found.
#[derive(Clone, Debug)]
pub struct ModuleState<B: Backend> {
    /// Ternary weights, in visit order.
    pub ternary: Vec<TernaryWeightState<B>>,
    /// Float tensors that are not gradient ports.
    pub floats: Vec<FloatState>,
    /// Integer tensors that are not part of a ternary weight: `(path, bytes)`.
    pub other_ints: Vec<(String, usize)>,
}

#[derive(Default)]
struct Partial<B: Backend> {
    trits: Option<(ParamId, Tensor<B, 2, Int>)>,
    memory: Option<(ParamId, Tensor<B, 2, Int>)>,
    scale_code: Option<(ParamId, Tensor<B, 1, Int>)>,
    port: Option<(ParamId, usize)>,
}

struct Collector<B: Backend> {
    path: Vec<(String, String)>,
    partial: Partial<B>,
    out: ModuleState<B>,
}

impl<B: Backend> Collector<B> {
    fn field(&self) -> Option<&str> {
        self.path
            .last()
            .filter(|(_, container)| container == WEIGHT_CONTAINER)
            .map(|(name, _)| name.as_str())
    }

    fn dotted(&self) -> String {
        self.path
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

fn to_rank<B: Backend, const D: usize, const R: usize>(t: Tensor<B, D, Int>) -> Tensor<B, R, Int> {
    let dims = t.dims();
    let mut shape = [1usize; R];
    shape.copy_from_slice(&dims[..R]);
    t.reshape(shape)
}

impl<B: Backend> ModuleVisitor<B> for Collector<B> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.pop();
        // Leaving the last field of a TernaryWeight completes it.
        let at_weight_end = container_type == WEIGHT_CONTAINER;
        let p = &self.partial;
        if at_weight_end
            && p.trits.is_some()
            && p.memory.is_some()
            && p.scale_code.is_some()
            && p.port.is_some()
        {
            let p = core::mem::take(&mut self.partial);
            let scale_code = p.scale_code.expect("checked");
            let (port, cols) = p.port.expect("checked");
            self.out.ternary.push(TernaryWeightState {
                path: self.dotted(),
                dims: [scale_code.1.dims()[0], cols],
                trits: p.trits.expect("checked"),
                memory: p.memory.expect("checked"),
                scale_code,
                port,
            });
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.field() == Some("grad_port") && D == 2 {
            self.partial.port = Some((param.id, param.shape()[1]));
            return;
        }
        let tensor = param.val();
        let numel = tensor.shape().num_elements();
        self.out.floats.push(FloatState {
            path: self.dotted(),
            numel,
            bytes: numel * tensor.dtype().size(),
            trainable: tensor.is_require_grad(),
        });
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        let tensor = param.val();
        match (self.field(), D) {
            (Some("trits"), 2) => self.partial.trits = Some((param.id, to_rank(tensor))),
            (Some("memory"), 2) => self.partial.memory = Some((param.id, to_rank(tensor))),
            (Some("scale_code"), 1) => self.partial.scale_code = Some((param.id, to_rank(tensor))),
            _ => {
                let bytes = tensor.shape().num_elements() * tensor.dtype().size();
                self.out.other_ints.push((self.dotted(), bytes));
            }
        }
    }
}

/// Walks `module` and returns its ternary weights and other tensors.
pub fn collect<B: Backend, M: Module<B>>(module: &M) -> ModuleState<B> {
    let mut collector = Collector {
        path: Vec::new(),
        partial: Partial::default(),
        out: ModuleState {
            ternary: Vec::new(),
            floats: Vec::new(),
            other_ints: Vec::new(),
        },
    };
    module.visit(&mut collector);
    collector.out
}
