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

/// Applies `activation` elementwise, returning a new tensor (one pass: read x, write the result).
public func activate(_ x: Tensor, _ activation: Activation) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    x.withData { xp in out.withFreshData { op in applyActivation(activation, SendablePointer(xp), SendablePointer(op), x.count) } }
    return out
}

/// Applies `activation` elementwise in place (copying first if the storage is shared).
public func activateInPlace(_ x: inout Tensor, _ activation: Activation) {
    let n = x.count
    x.withMutableData { p in applyActivation(activation, SendablePointer(p), SendablePointer(p), n) }
}

func applyActivation(_ activation: Activation, _ x: SendablePointer<Float>, _ out: SendablePointer<Float>, _ n: Int) {
    parallelRanges(n, grain: 1 << 16) { r in
        let (src, dst) = (UnsafePointer(x.pointer + r.lowerBound), out.pointer + r.lowerBound)
        switch activation {
        case .relu: lgap_relu(src, dst, r.count)
        case .silu: lgap_silu(src, dst, r.count)
        case .gelu: lgap_gelu_erf(src, dst, r.count)
        case .geluTanh: lgap_gelu_tanh(src, dst, r.count)
        case .quickGelu: lgap_quick_gelu(src, dst, r.count)
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

/// Softmax over the last dimension (one pass over x into a new tensor).
public func softmax(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    x.withData { xp in out.withFreshData { op in softmaxRows(SendablePointer(xp), SendablePointer(op), x.shape[x.rank - 1], x.count) } }
    return out
}

public func softmaxInPlace(_ x: inout Tensor) {
    let cols = x.shape[x.rank - 1], n = x.count
    x.withMutableData { p in softmaxRows(SendablePointer(p), SendablePointer(p), cols, n) }
}

func softmaxRows(_ x: SendablePointer<Float>, _ out: SendablePointer<Float>, _ cols: Int, _ count: Int) {
    let rows = count / max(cols, 1)
    parallelRanges(rows, grain: max(1, 16384 / max(cols, 1))) { r in
        lgap_softmax_rows(UnsafePointer(x.pointer + r.lowerBound * cols), out.pointer + r.lowerBound * cols, r.count, cols)
    }
}
