// Broadcasting arithmetic (NumPy/PyTorch rules) and scalar ops.
import CKernels

/// Shape two operands broadcast to, or nil when they are incompatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        if da != db && da != 1 && db != 1 { return nil }
        out[i] = da == 1 ? db : da
    }
    return out
}

enum BinaryOp { case add, sub, mul, div }

@inline(__always)
private func apply(_ op: BinaryOp, _ x: Float, _ y: Float) -> Float {
    switch op {
    case .add: return x + y
    case .sub: return x - y
    case .mul: return x * y
    case .div: return x / y
    }
}

/// Element strides of `shape` seen as `outShape` (0 along broadcast dimensions).
private func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let pad = outShape.count - shape.count
    var strides = [Int](repeating: 0, count: outShape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i + pad] = shape[i] == 1 ? 0 : s
        s *= shape[i]
    }
    return strides
}

func binary(_ a: Tensor, _ b: Tensor, _ op: BinaryOp) -> Tensor {
    guard let shape = broadcastShape(a.shape, b.shape) else {
        preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let out = Tensor(uninitialized: shape)
    a.withData { ap in
        b.withData { bp in
            out.withFreshData { op_ in
                if a.shape == b.shape {
                    switch op {
                    case .add: lgap_add(ap, bp, op_, a.count)
                    case .mul: lgap_mul(ap, bp, op_, a.count)
                    default: for i in 0..<a.count { op_[i] = apply(op, ap[i], bp[i]) }
                    }
                    return
                }
                // Walk the output in runs along the last dimension; each run reads a and b with a fixed stride.
                let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
                let r = shape.count
                let inner = shape[r - 1]
                let ia = sa[r - 1], ib = sb[r - 1]
                let runs = out.count / max(inner, 1)
                var index = [Int](repeating: 0, count: r)
                var offA = 0, offB = 0
                for run in 0..<runs {
                    let dst = op_ + run * inner
                    if ia == 1 && ib == 1 {
                        for j in 0..<inner { dst[j] = apply(op, ap[offA + j], bp[offB + j]) }
                    } else {
                        for j in 0..<inner { dst[j] = apply(op, ap[offA + j * ia], bp[offB + j * ib]) }
                    }
                    // Advance the multi-index over the leading dimensions.
                    var d = r - 2
                    while d >= 0 {
                        index[d] += 1
                        offA += sa[d]; offB += sb[d]
                        if index[d] < shape[d] { break }
                        offA -= sa[d] * shape[d]; offB -= sb[d] * shape[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }
    return out
}

public func + (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .add) }
public func - (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .sub) }
public func * (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .mul) }
public func / (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .div) }

/// out = a · x + b elementwise (scale and shift by scalars).
public func affine(_ x: Tensor, scale a: Float, shift b: Float = 0) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    x.withData { xp in
        out.withFreshData { op in
            for i in 0..<x.count { op[i] = a * xp[i] + b }
        }
    }
    return out
}

public func * (x: Tensor, s: Float) -> Tensor { affine(x, scale: s) }
public func * (s: Float, x: Tensor) -> Tensor { affine(x, scale: s) }
public func + (x: Tensor, s: Float) -> Tensor { affine(x, scale: 1, shift: s) }

/// a ← a + b in place (same shape); avoids an allocation on residual paths.
public func addInPlace(_ a: inout Tensor, _ b: Tensor) {
    precondition(a.shape == b.shape, "addInPlace: \(a.shape) vs \(b.shape)")
    let n = a.count
    b.withData { bp in a.withMutableData { ap in lgap_add(ap, bp, ap, n) } }
}

/// Clamps every element to [lo, hi].
public func clamp(_ x: Tensor, _ lo: Float, _ hi: Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    x.withData { xp in
        out.withFreshData { op in
            for i in 0..<x.count { op[i] = Swift.min(Swift.max(xp[i], lo), hi) }
        }
    }
    return out
}
