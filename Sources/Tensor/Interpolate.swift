// Resizing float images as torch.nn.functional.interpolate does (align_corners=False, antialias=False).
//
// Which models use what: the diffusion purifier resizes float images in [0,1] with these (pack.json
// names the mode); BLIP's and torchvision's image processors resize 8-bit images with PIL, which is
// `PILResample` in the ImageIO target. The two disagree (PIL antialiases when shrinking, and its
// bicubic uses a = −0.5 where torch uses a = −0.75), so each model uses the one its reference uses.

public enum InterpolationMode: String, Sendable, Codable {
    case bilinear, bicubic
}

/// Source coordinate of output index `i` (PyTorch's area_pixel_compute_source_index, align_corners=False).
@inline(__always)
func sourceIndex(_ i: Int, scale: Double, cubic: Bool) -> Double {
    let s = scale * (Double(i) + 0.5) - 0.5
    return (!cubic && s < 0) ? 0 : s
}

/// Catmull-Rom style cubic weights with A = −0.75 (PyTorch's get_cubic_upsample_coefficients).
@inline(__always)
func cubicWeights(_ t: Double) -> (Double, Double, Double, Double) {
    let a = -0.75
    func near(_ x: Double) -> Double { ((a + 2) * x - (a + 3)) * x * x + 1 }
    func far(_ x: Double) -> Double { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
    return (far(t + 1), near(t), near(1 - t), far(2 - t))
}

/// x: [N, C, H, W] → [N, C, outH, outW].
public func interpolate(_ x: Tensor, height outH: Int, width outW: Int, mode: InterpolationMode) -> Tensor {
    precondition(x.rank == 4 && outH > 0 && outW > 0, "interpolate needs [N, C, H, W] and a positive size; got \(x.shape)")
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let sy = Double(h) / Double(outH), sx = Double(w) / Double(outW)
    let out = Tensor(uninitialized: [x.shape[0], x.shape[1], outH, outW])
    // Per output column/row: source indices and weights (computed once, reused for every plane).
    typealias Taps = (idx: [Int], wts: [Double])
    func taps(_ n: Int, _ inSize: Int, _ scale: Double) -> [Taps] {
        (0..<n).map { o in
            switch mode {
            case .bilinear:
                let s = sourceIndex(o, scale: scale, cubic: false)
                let i0 = Int(s)
                let step = i0 < inSize - 1 ? 1 : 0
                let l1 = s - Double(i0)
                return ([i0, i0 + step], [1 - l1, l1])
            case .bicubic:
                let s = sourceIndex(o, scale: scale, cubic: true)
                let i0 = Int(s.rounded(.down))
                let t = s - Double(i0)
                let (w0, w1, w2, w3) = cubicWeights(t)
                let idx = (-1...2).map { Swift.min(Swift.max(i0 + $0, 0), inSize - 1) }
                return (idx, [w0, w1, w2, w3])
            }
        }
    }
    let rows = taps(outH, h, sy), cols = taps(outW, w, sx)
    x.withData { xp in
        out.withFreshData { op in
            for p in 0..<planes {
                let src = xp + p * h * w, dst = op + p * outH * outW
                for oy in 0..<outH {
                    let r = rows[oy]
                    for ox in 0..<outW {
                        let c = cols[ox]
                        var acc = 0.0
                        for (iy, wy) in zip(r.idx, r.wts) {
                            var rowAcc = 0.0
                            for (ix, wx) in zip(c.idx, c.wts) { rowAcc += Double(src[iy * w + ix]) * wx }
                            acc += rowAcc * wy
                        }
                        dst[oy * outW + ox] = Float(acc)
                    }
                }
            }
        }
    }
    return out
}
