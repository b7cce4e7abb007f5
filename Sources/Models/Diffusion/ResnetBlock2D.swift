// Port of diffusers ResnetBlock2D, Downsample2D and Upsample2D (models/resnet.py, downsampling.py,
// upsampling.py) for the configurations SD-style UNets and AutoencoderKL use.
import NN
import Tensor

struct ResnetBlock2D: Sendable {
    let norm1: GroupNorm
    let conv1: Conv2d
    let timeEmbProj: Linear?
    let norm2: GroupNorm
    let conv2: Conv2d
    let convShortcut: Conv2d?
    let outputScale: Float

    init(
        _ w: WeightScope, inChannels: Int, outChannels: Int, tembChannels: Int?, groups: Int, eps: Float,
        outputScaleFactor: Float = 1
    ) throws {
        norm1 = try GroupNorm(w.scope("norm1"), groups: groups, channels: inChannels, eps: eps)
        conv1 = try Conv2d(w.scope("conv1"), inChannels: inChannels, outChannels: outChannels, kernel: 3, padding: 1)
        timeEmbProj = try tembChannels.map { try Linear(w.scope("time_emb_proj"), inFeatures: $0, outFeatures: outChannels) }
        norm2 = try GroupNorm(w.scope("norm2"), groups: groups, channels: outChannels, eps: eps)
        conv2 = try Conv2d(w.scope("conv2"), inChannels: outChannels, outChannels: outChannels, kernel: 3, padding: 1)
        convShortcut =
            inChannels == outChannels
            ? nil
            : try Conv2d(w.scope("conv_shortcut"), inChannels: inChannels, outChannels: outChannels, kernel: 1)
        outputScale = outputScaleFactor
    }

    /// x: [B, Cin, H, W], temb: [B, T] (the raw time embedding; silu is applied here) → [B, Cout, H, W]
    func callAsFunction(_ x: Tensor, temb: Tensor?) -> Tensor {
        var h = norm1(x)
        activateInPlace(&h, .silu)
        h = conv1(h)
        if let proj = timeEmbProj, let temb {
            // temb → silu → linear, broadcast over H, W   [B, Cout, 1, 1]
            let t = proj(silu(temb))
            h = h + t.reshaped([t.shape[0], t.shape[1], 1, 1])
        }
        h = norm2(h)
        activateInPlace(&h, .silu)
        h = conv2(h)
        addInPlace(&h, convShortcut.map { $0(x) } ?? x)
        return outputScale == 1 ? h : h * (1 / outputScale)
    }
}

/// Downsample2D with a convolution: stride 2, padding `padding` (0 means diffusers' asymmetric
/// (0, 1, 0, 1) zero pad first, as AutoencoderKL's encoder does).
struct Downsample2D: Sendable {
    let conv: Conv2d
    let padding: Int

    init(_ w: WeightScope, channels: Int, outChannels: Int? = nil, padding: Int) throws {
        conv = try Conv2d(
            w.scope("conv"), inChannels: channels, outChannels: outChannels ?? channels, kernel: 3, stride: 2,
            padding: padding)
        self.padding = padding
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        padding == 0 ? conv(pad2d(x, right: 1, bottom: 1)) : conv(x)
    }
}

/// Upsample2D with a convolution: nearest ×2 (or to an explicit size), then 3×3 conv.
struct Upsample2D: Sendable {
    let conv: Conv2d

    init(_ w: WeightScope, channels: Int, outChannels: Int? = nil) throws {
        conv = try Conv2d(w.scope("conv"), inChannels: channels, outChannels: outChannels ?? channels, kernel: 3, padding: 1)
    }

    func callAsFunction(_ x: Tensor, size: (Int, Int)? = nil) -> Tensor {
        if let size, size != (2 * x.shape[2], 2 * x.shape[3]) {
            return conv(resizeNearest(x, height: size.0, width: size.1))
        }
        return conv(upsampleNearest2x(x))
    }
}
