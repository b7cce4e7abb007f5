// Pointwise activations and softmax.
import CKernels

public enum Activation: String, Sendable, Codable {
    case relu, silu, gelu
    case geluTanh = "gelu_tanh"
    case quickGelu = "quick_gelu"

    /// Reads the activation names used in Hugging Face config.json files.
    public init?(configName: String) {
        switch configName {
        case "relu": self = .relu
        case "silu", "swish": self = .silu
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "quick_gelu": self = .quickGelu
        default: return nil
        }
    }
}

/// Applies `activation` elementwise, returning a new tensor.
public func activate(_ x: Tensor, _ activation: Activation) -> Tensor {
    var out = x.copy()
    activateInPlace(&out, activation)
    return out
}

/// Applies `activation` elementwise in place (copying first if the storage is shared).
public func activateInPlace(_ x: inout Tensor, _ activation: Activation) {
    let n = x.count
    x.withMutableData { p in
        let s = SendablePointer(p)
        parallelRanges(n, grain: 1 << 16) { r in
            let q = s.pointer + r.lowerBound
            switch activation {
            case .relu: lgap_relu(q, r.count)
            case .silu: lgap_silu(q, r.count)
            case .gelu: lgap_gelu_erf(q, r.count)
            case .geluTanh: lgap_gelu_tanh(q, r.count)
            case .quickGelu: lgap_quick_gelu(q, r.count)
            }
        }
    }
}

public func relu(_ x: Tensor) -> Tensor { activate(x, .relu) }
public func silu(_ x: Tensor) -> Tensor { activate(x, .silu) }
/// Exact (erf) GELU, PyTorch's default.
public func gelu(_ x: Tensor) -> Tensor { activate(x, .gelu) }
/// GELU with the tanh approximation (approximate="tanh").
public func geluTanh(_ x: Tensor) -> Tensor { activate(x, .geluTanh) }
public func quickGelu(_ x: Tensor) -> Tensor { activate(x, .quickGelu) }

/// Softmax over the last dimension.
public func softmax(_ x: Tensor) -> Tensor {
    var out = x.copy()
    softmaxInPlace(&out)
    return out
}

public func softmaxInPlace(_ x: inout Tensor) {
    let cols = x.shape[x.rank - 1], rows = x.count / max(cols, 1)
    x.withMutableData { p in
        let s = SendablePointer(p)
        parallelRanges(rows, grain: max(1, 16384 / max(cols, 1))) { r in
            lgap_softmax_rows(s.pointer + r.lowerBound * cols, r.count, cols)
        }
    }
}
