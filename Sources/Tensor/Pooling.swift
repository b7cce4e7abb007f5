// Spatial ops on [N, C, H, W]: pooling, nearest upsampling, strided subsampling, channel padding.
import CKernels

/// x: [N, C, H, W] → [N, C, 2H, 2W], each pixel repeated 2×2 (F.interpolate(scale_factor=2, mode="nearest")).
public func upsampleNearest2x(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "upsampleNearest2x needs [N, C, H, W], got \(x.shape)")
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let out = Tensor(uninitialized: [x.shape[0], x.shape[1], 2 * h, 2 * w])
    x.withData { xp in
        out.withFreshData { op in
            let src = SendablePointer(xp), dst = SendablePointer(op)
            parallelRanges(planes, grain: max(1, 16384 / max(h * w, 1))) { range in
                for p in range {
                    let s = src.pointer + p * h * w, d = dst.pointer + p * 4 * h * w
                    for y in 0..<h {
                        let row = d + 2 * y * 2 * w
                        for xx in 0..<w { row[2 * xx] = s[y * w + xx]; row[2 * xx + 1] = s[y * w + xx] }
                        (row + 2 * w).update(from: row, count: 2 * w)
                    }
                }
            }
        }
    }
    return out
}

/// x: [N, C, H, W] → [N, C, Ho, Wo] (F.avg_pool2d, count_include_pad=True, floor mode).
public func avgPool2d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) -> Tensor {
    precondition(x.rank == 4, "avgPool2d needs [N, C, H, W], got \(x.shape)")
    let s = stride ?? kernel
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let ho = (h + 2 * padding - kernel) / s + 1, wo = (w + 2 * padding - kernel) / s + 1
    precondition(ho > 0 && wo > 0, "avgPool2d kernel \(kernel) larger than input \(h)×\(w)")
    let out = Tensor(uninitialized: [x.shape[0], x.shape[1], ho, wo])
    let inv = 1 / Float(kernel * kernel)
    x.withData { xp in
        out.withFreshData { op in
            for p in 0..<planes {
                let src = xp + p * h * w, dst = op + p * ho * wo
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var acc: Float = 0
                        for ky in 0..<kernel {
                            let iy = oy * s - padding + ky
                            if iy < 0 || iy >= h { continue }
                            for kx in 0..<kernel {
                                let ix = ox * s - padding + kx
                                if ix >= 0 && ix < w { acc += src[iy * w + ix] }
                            }
                        }
                        dst[oy * wo + ox] = acc * inv
                    }
                }
            }
        }
    }
    return out
}

/// x: [N, C, H, W] → [N, C] (mean over H×W).
public func globalAvgPool(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "globalAvgPool needs [N, C, H, W], got \(x.shape)")
    let planes = x.shape[0] * x.shape[1], hw = x.shape[2] * x.shape[3]
    let out = Tensor(uninitialized: [x.shape[0], x.shape[1]])
    x.withData { xp in
        out.withFreshData { op in
            for p in 0..<planes {
                var acc: Double = 0
                let src = xp + p * hw
                for i in 0..<hw { acc += Double(src[i]) }
                op[p] = Float(acc / Double(hw))
            }
        }
    }
    return out
}

/// x[:, :, ::step, ::step] (the CIFAR ResNet option-A shortcut's subsampling).
public func subsample2d(_ x: Tensor, step: Int) -> Tensor {
    precondition(x.rank == 4 && step > 0, "subsample2d needs [N, C, H, W], got \(x.shape)")
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let ho = (h + step - 1) / step, wo = (w + step - 1) / step
    let out = Tensor(uninitialized: [x.shape[0], x.shape[1], ho, wo])
    x.withData { xp in
        out.withFreshData { op in
            for p in 0..<planes {
                for y in 0..<ho { for xx in 0..<wo { op[(p * ho + y) * wo + xx] = xp[(p * h + y * step) * w + xx * step] } }
            }
        }
    }
    return out
}

/// Zero-pads the channel dimension of [N, C, H, W]: `before` channels in front, `after` behind.
public func padChannels(_ x: Tensor, before: Int, after: Int) -> Tensor {
    precondition(x.rank == 4, "padChannels needs [N, C, H, W], got \(x.shape)")
    let n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3]
    let co = c + before + after
    let out = Tensor(zeros: [n, co, x.shape[2], x.shape[3]])
    x.withData { xp in
        out.withFreshData { op in
            for i in 0..<n { (op + (i * co + before) * hw).update(from: xp + i * c * hw, count: c * hw) }
        }
    }
    return out
}

/// Rows of `table` [V, D] picked by `ids` → [ids.count, D] (nn.Embedding). Out-of-range ids trap.
public func embedding(_ ids: [Int], table: Tensor) -> Tensor {
    precondition(table.rank == 2, "embedding table must be [V, D], got \(table.shape)")
    let v = table.shape[0], d = table.shape[1]
    let out = Tensor(uninitialized: [ids.count, d])
    table.withData { tp in
        out.withFreshData { op in
            for (i, id) in ids.enumerated() {
                precondition(id >= 0 && id < v, "embedding id \(id) outside vocabulary of \(v)")
                (op + i * d).update(from: tp + id * d, count: d)
            }
        }
    }
    return out
}

/// x: [N, C, H, W] → [N, C, Ho, Wo] (F.max_pool2d, padding counts as −∞, floor mode).
public func maxPool2d(_ x: Tensor, kernel: Int, stride: Int, padding: Int = 0) -> Tensor {
    precondition(x.rank == 4, "maxPool2d needs [N, C, H, W], got \(x.shape)")
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let ho = (h + 2 * padding - kernel) / stride + 1, wo = (w + 2 * padding - kernel) / stride + 1
    precondition(ho > 0 && wo > 0, "maxPool2d kernel \(kernel) larger than input \(h)×\(w)")
    let out = Tensor(uninitialized: [x.shape[0], x.shape[1], ho, wo])
    x.withData { xp in
        out.withFreshData { op in
            let (px, po) = (SendablePointer(xp), SendablePointer(op))
            // ResNet-50's stem pool (64 × 112² → 56²) was 3% of a batch-1 forward as a scalar loop.
            parallelRanges(planes, grain: max(1, 16384 / max(1, ho * wo * kernel * kernel))) { range in
                for p in range {
                    lgap_maxpool2d_plane(px.pointer + p * h * w, h, w, kernel, stride, padding, ho, wo, po.pointer + p * ho * wo)
                }
            }
        }
    }
    return out
}

/// Zero-pads the spatial dimensions of [N, C, H, W] (F.pad(x, (left, right, top, bottom))).
public func pad2d(_ x: Tensor, left: Int = 0, right: Int = 0, top: Int = 0, bottom: Int = 0) -> Tensor {
    precondition(x.rank == 4 && left >= 0 && right >= 0 && top >= 0 && bottom >= 0, "pad2d needs [N, C, H, W] and non-negative pads")
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let ho = h + top + bottom, wo = w + left + right
    let out = Tensor(zeros: [x.shape[0], x.shape[1], ho, wo])
    x.withData { xp in
        out.withFreshData { op in
            for p in 0..<planes {
                for y in 0..<h { (op + (p * ho + y + top) * wo + left).update(from: xp + (p * h + y) * w, count: w) }
            }
        }
    }
    return out
}

/// Nearest-neighbour resize of [N, C, H, W] to an explicit size (F.interpolate(size=…, mode="nearest"):
/// source index floor(dst · in / out)).
public func resizeNearest(_ x: Tensor, height: Int, width: Int) -> Tensor {
    precondition(x.rank == 4 && height > 0 && width > 0, "resizeNearest needs [N, C, H, W] and a positive size")
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let sy = Float(h) / Float(height), sx = Float(w) / Float(width)
    let ys = (0..<height).map { min(Int((Float($0) * sy).rounded(.down)), h - 1) }
    let xs = (0..<width).map { min(Int((Float($0) * sx).rounded(.down)), w - 1) }
    let out = Tensor(uninitialized: [x.shape[0], x.shape[1], height, width])
    x.withData { xp in
        out.withFreshData { op in
            for p in 0..<planes {
                for (oy, iy) in ys.enumerated() {
                    for (ox, ix) in xs.enumerated() {
                        op[(p * height + oy) * width + ox] = xp[(p * h + iy) * w + ix]
                    }
                }
            }
        }
    }
    return out
}
