// Group norm, layer norm and inference batch norm.
import CKernels

/// x: [N, C, *], weight/bias: [C]? → same shape; statistics per sample over C/groups channels × spatial.
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    precondition(x.rank >= 2, "groupNorm needs [N, C, ...], got \(x.shape)")
    let n = x.shape[0], c = x.shape[1]
    precondition(groups > 0 && c % groups == 0, "groupNorm: \(c) channels do not split into \(groups) groups")
    if let weight { precondition(weight.shape == [c], "groupNorm weight \(weight.shape), expected [\(c)]") }
    if let bias { precondition(bias.shape == [c], "groupNorm bias \(bias.shape), expected [\(c)]") }
    let inner = x.count / max(n * c, 1)
    let out = Tensor(uninitialized: x.shape)
    x.withData { xp in
        out.withFreshData { op in
            withOptionalData(weight) { wp in
                withOptionalData(bias) { bp in
                    let src = SendablePointer(xp), dst = SendablePointer(op)
                    let wS = wp.map { SendablePointer($0) }, bS = bp.map { SendablePointer($0) }
                    parallelRanges(n * groups, grain: max(1, 32768 / max(1, inner * c / groups))) { range in
                        for job in range {
                            let s = job / groups, g = job % groups
                            let per = c / groups
                            let offset = (s * c + g * per) * inner
                            lgap_groupnorm(
                                src.pointer + offset, dst.pointer + offset, per, inner, 1,
                                wS.map { UnsafePointer($0.pointer + g * per) },
                                bS.map { UnsafePointer($0.pointer + g * per) }, eps)
                        }
                    }
                }
            }
        }
    }
    return out
}

/// x: [..., C], weight/bias: [C]? → same shape; normalises over the last dimension.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    let c = x.shape[x.rank - 1]
    if let weight { precondition(weight.shape == [c], "layerNorm weight \(weight.shape), expected [\(c)]") }
    if let bias { precondition(bias.shape == [c], "layerNorm bias \(bias.shape), expected [\(c)]") }
    let rows = x.count / max(c, 1)
    let out = Tensor(uninitialized: x.shape)
    x.withData { xp in
        out.withFreshData { op in
            withOptionalData(weight) { wp in
                withOptionalData(bias) { bp in
                    let src = SendablePointer(xp), dst = SendablePointer(op)
                    let wS = wp.map { SendablePointer($0) }, bS = bp.map { SendablePointer($0) }
                    parallelRanges(rows, grain: max(1, 65536 / max(c, 1))) { r in
                        lgap_layernorm_rows(
                            src.pointer + r.lowerBound * c, dst.pointer + r.lowerBound * c, r.count, c,
                            wS.map { UnsafePointer($0.pointer) }, bS.map { UnsafePointer($0.pointer) }, eps)
                    }
                }
            }
        }
    }
    return out
}

/// Inference batch norm. x: [N, C, *], statistics and affine: [C] → same shape.
/// (Models fold it into the preceding convolution at load; this op is the unfused reference.)
public func batchNorm(_ x: Tensor, runningMean: Tensor, runningVar: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
    let n = x.shape[0], c = x.shape[1], inner = x.count / max(x.shape[0] * x.shape[1], 1)
    let mu = runningMean.scalars, v = runningVar.scalars, g = weight.scalars, b = bias.scalars
    let out = Tensor(uninitialized: x.shape)
    x.withData { xp in
        out.withFreshData { op in
            for s in 0..<n {
                for ch in 0..<c {
                    let scale = g[ch] / (v[ch] + eps).squareRoot()
                    let shift = b[ch] - mu[ch] * scale
                    let base = (s * c + ch) * inner
                    for i in 0..<inner { op[base + i] = xp[base + i] * scale + shift }
                }
            }
        }
    }
    return out
}

@inlinable
func withOptionalData<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    if let t { return t.withData { body($0) } }
    return body(nil)
}

/// y = x · scale[c] + shift[c] over [N, C, *], optionally followed by ReLU: a batch norm that cannot be
/// folded into a convolution (pre-activation blocks), with its statistics already reduced to scale/shift.
public func channelAffine(_ x: Tensor, scale: Tensor, shift: Tensor, relu: Bool = false) -> Tensor {
    let n = x.shape[0], c = x.shape[1], inner = x.count / max(n * c, 1)
    precondition(scale.shape == [c] && shift.shape == [c], "channelAffine: scale \(scale.shape)/shift \(shift.shape) for \(c) channels")
    let out = Tensor(uninitialized: x.shape)
    let sc = scale.scalars, sh = shift.scalars
    x.withData { xp in
        out.withFreshData { op in
            for s in 0..<n {
                for ch in 0..<c {
                    let base = (s * c + ch) * inner
                    let a = sc[ch], b = sh[ch]
                    if relu {
                        for i in 0..<inner { op[base + i] = Swift.max(xp[base + i] * a + b, 0) }
                    } else {
                        for i in 0..<inner { op[base + i] = xp[base + i] * a + b }
                    }
                }
            }
        }
    }
    return out
}
