// Port of akamaster/pytorch_resnet_cifar10 (resnet.py): the CIFAR ResNet of He et al. 2016 with
// option-A shortcuts. Depth 6n+2: a 3×3 stem, three stages of n BasicBlocks (16, 32, 64 channels),
// global average pooling, a linear head. Batch norm is folded into the convolutions at load.
import NN
import Tensor

struct CIFARBasicBlock: Sendable {
    let conv1: Conv2d  // conv1 → bn1 folded
    let conv2: Conv2d  // conv2 → bn2 folded
    let downsample: Bool
    let pad: Int

    init(_ w: WeightScope, inPlanes: Int, planes: Int, stride: Int) throws {
        conv1 = try Conv2d(
            w.scope("conv1"), inChannels: inPlanes, outChannels: planes, kernel: 3, stride: stride,
            padding: 1, bias: false
        ).foldingBatchNorm(w.scope("bn1"))
        conv2 = try Conv2d(
            w.scope("conv2"), inChannels: planes, outChannels: planes, kernel: 3, padding: 1,
            bias: false
        ).foldingBatchNorm(w.scope("bn2"))
        downsample = stride != 1 || inPlanes != planes
        pad = planes / 4
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var out = conv1(x)
        activateInPlace(&out, .relu)
        out = conv2(out)
        // Option A shortcut: x[:, :, ::2, ::2] zero-padded by planes/4 channels on each side.
        let shortcut = downsample ? padChannels(subsample2d(x, step: 2), before: pad, after: pad) : x
        addInPlace(&out, shortcut)
        activateInPlace(&out, .relu)
        return out
    }
}

public struct CIFARResNet: ClassifierNetwork {
    let stem: Conv2d  // conv1 → bn1 folded
    let stages: [[CIFARBasicBlock]]
    let head: Linear

    public init(_ w: WeightScope, config: ClassifierConfig) throws {
        let widths = config.widths ?? [16, 32, 64]
        let n = (config.depth - 2) / 6
        stem = try Conv2d(w.scope("conv1"), inChannels: 3, outChannels: widths[0], kernel: 3, padding: 1, bias: false)
            .foldingBatchNorm(w.scope("bn1"))
        var inPlanes = widths[0]
        var stages: [[CIFARBasicBlock]] = []
        for (s, planes) in widths.enumerated() {
            let layer = w.scope("layer\(s + 1)")
            stages.append(
                try (0..<n).map { i in
                    defer { inPlanes = planes }
                    return try CIFARBasicBlock(layer.scope(i), inPlanes: inPlanes, planes: planes, stride: i == 0 && s > 0 ? 2 : 1)
                })
        }
        self.stages = stages
        head = try Linear(w.scope("linear"), inFeatures: widths[2], outFeatures: config.numClasses)
    }

    /// x: [N, 3, H, W] normalised → logits [N, classes]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var out = stem(x)
        activateInPlace(&out, .relu)
        for stage in stages { for block in stage { out = block(out) } }
        return head(globalAvgPool(out))
    }
}
