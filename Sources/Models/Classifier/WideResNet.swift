// Port of RobustBench's WideResNet (model_zoo/architectures/wide_resnet.py): pre-activation
// BasicBlocks (bn1 → relu → conv1 → bn2 → relu → conv2, 1×1 convShortcut when widths differ),
// widths 16, 16k, 32k, 64k for widen factor k, depth 6n+4. bn2 folds into conv1; bn1 precedes a
// residual sum, so it stays as a per-channel scale and shift fused with its ReLU.
import NN
import Tensor

/// An inference batch norm reduced to y = x·scale + shift (for norms that cannot be folded).
struct ChannelNorm: Sendable {
    let scale: Tensor
    let shift: Tensor

    init(_ w: WeightScope, channels c: Int, eps: Float = 1e-5) throws {
        let g = try w.tensor("weight", shape: [c]).scalars, b = try w.tensor("bias", shape: [c]).scalars
        let mu = try w.tensor("running_mean", shape: [c]).scalars, v = try w.tensor("running_var", shape: [c]).scalars
        w.store.ignore { $0 == w.key("num_batches_tracked") }
        let s = (0..<c).map { Float(Double(g[$0]) / (Double(v[$0]) + Double(eps)).squareRoot()) }
        scale = Tensor(shape: [c], data: s)
        shift = Tensor(shape: [c], data: (0..<c).map { b[$0] - mu[$0] * s[$0] })
    }

    func callAsFunction(_ x: Tensor, relu: Bool) -> Tensor { channelAffine(x, scale: scale, shift: shift, relu: relu) }
}

struct WideBasicBlock: Sendable {
    let bn1: ChannelNorm
    let conv1: Conv2d  // conv1 → bn2 folded
    let conv2: Conv2d
    let shortcut: Conv2d?

    init(_ w: WeightScope, inPlanes: Int, outPlanes: Int, stride: Int) throws {
        bn1 = try ChannelNorm(w.scope("bn1"), channels: inPlanes)
        conv1 = try Conv2d(
            w.scope("conv1"), inChannels: inPlanes, outChannels: outPlanes, kernel: 3, stride: stride,
            padding: 1, bias: false
        ).foldingBatchNorm(w.scope("bn2"))
        conv2 = try Conv2d(w.scope("conv2"), inChannels: outPlanes, outChannels: outPlanes, kernel: 3, padding: 1, bias: false)
        shortcut =
            inPlanes == outPlanes
            ? nil
            : try Conv2d(w.scope("convShortcut"), inChannels: inPlanes, outChannels: outPlanes, kernel: 1, stride: stride, bias: false)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let pre = bn1(x, relu: true)
        var out = conv1(pre)
        activateInPlace(&out, .relu)
        out = conv2(out)
        // equalInOut adds the raw input; otherwise the shortcut convolves the pre-activated input.
        addInPlace(&out, shortcut.map { $0(pre) } ?? x)
        return out
    }
}

public struct WideResNet: ClassifierNetwork {
    let stem: Conv2d
    let blocks: [WideBasicBlock]
    let bn: ChannelNorm
    let fc: Linear

    public init(_ w: WeightScope, config: ClassifierConfig) throws {
        let k = config.widenFactor ?? 10
        let ch = [16, 16 * k, 32 * k, 64 * k]
        let n = (config.depth - 4) / 6
        stem = try Conv2d(w.scope("conv1"), inChannels: 3, outChannels: ch[0], kernel: 3, padding: 1, bias: false)
        var blocks: [WideBasicBlock] = []
        for b in 0..<3 {
            let scope = w.scope("block\(b + 1)").scope("layer")
            for i in 0..<n {
                blocks.append(
                    try WideBasicBlock(
                        scope.scope(i), inPlanes: i == 0 ? ch[b] : ch[b + 1], outPlanes: ch[b + 1],
                        stride: i == 0 && b > 0 ? 2 : 1))
            }
        }
        self.blocks = blocks
        bn = try ChannelNorm(w.scope("bn1"), channels: ch[3])
        fc = try Linear(w.scope("fc"), inFeatures: ch[3], outFeatures: config.numClasses)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var out = stem(x)
        for block in blocks { out = block(out) }
        out = bn(out, relu: true)
        // F.avg_pool2d(out, 8) on the 8×8 map of a 32-pixel input is the global mean.
        return fc(globalAvgPool(out))
    }
}
