// Port of torchvision.models.resnet (ResNet-18/34 BasicBlock, ResNet-50/101/152 Bottleneck, v1.5:
// stride on the 3×3 convolution). 7×7 stem, 3×3 max pool, four stages, global average pool, fc.
// Every batch norm follows a convolution and is folded into it at load.
import NN
import Tensor

struct TorchvisionBlock: Sendable {
    let convs: [Conv2d]  // conv1..conv3 (bottleneck) or conv1..conv2 (basic), batch norms folded
    let downsample: Conv2d?  // downsample.0 → downsample.1 folded

    init(_ w: WeightScope, inPlanes: Int, planes: Int, stride: Int, bottleneck: Bool, widthPerGroup: Int) throws {
        let expansion = bottleneck ? 4 : 1
        if bottleneck {
            let width = planes * widthPerGroup / 64
            convs = [
                try Conv2d(w.scope("conv1"), inChannels: inPlanes, outChannels: width, kernel: 1, bias: false).foldingBatchNorm(w.scope("bn1")),
                try Conv2d(w.scope("conv2"), inChannels: width, outChannels: width, kernel: 3, stride: stride, padding: 1, bias: false).foldingBatchNorm(
                    w.scope("bn2")),
                try Conv2d(w.scope("conv3"), inChannels: width, outChannels: planes * 4, kernel: 1, bias: false).foldingBatchNorm(w.scope("bn3"))
            ]
        } else {
            convs = [
                try Conv2d(w.scope("conv1"), inChannels: inPlanes, outChannels: planes, kernel: 3, stride: stride, padding: 1, bias: false).foldingBatchNorm(
                    w.scope("bn1")),
                try Conv2d(w.scope("conv2"), inChannels: planes, outChannels: planes, kernel: 3, padding: 1, bias: false).foldingBatchNorm(w.scope("bn2"))
            ]
        }
        downsample =
            (stride != 1 || inPlanes != planes * expansion)
            ? try Conv2d(w.scope("downsample.0"), inChannels: inPlanes, outChannels: planes * expansion, kernel: 1, stride: stride, bias: false)
                .foldingBatchNorm(w.scope("downsample.1"))
            : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var out = x
        for (i, conv) in convs.enumerated() {
            out = conv(out)
            if i < convs.count - 1 { activateInPlace(&out, .relu) }
        }
        addInPlace(&out, downsample.map { $0(x) } ?? x)
        activateInPlace(&out, .relu)
        return out
    }
}

public struct TorchvisionResNet: ClassifierNetwork {
    let stem: Conv2d
    let blocks: [TorchvisionBlock]
    let fc: Linear

    public init(_ w: WeightScope, config: ClassifierConfig) throws {
        let (standard, bottleneck): ([Int], Bool) =
            switch config.depth {
            case 18: ([2, 2, 2, 2], false)
            case 34: ([3, 4, 6, 3], false)
            case 50: ([3, 4, 6, 3], true)
            case 101: ([3, 4, 23, 3], true)
            default: ([3, 8, 36, 3], true)
            }
        let counts = config.layers ?? standard
        stem = try Conv2d(w.scope("conv1"), inChannels: 3, outChannels: 64, kernel: 7, stride: 2, padding: 3, bias: false)
            .foldingBatchNorm(w.scope("bn1"))
        var inPlanes = 64
        var blocks: [TorchvisionBlock] = []
        for (s, count) in counts.enumerated() {
            let planes = 64 << s
            for i in 0..<count {
                blocks.append(
                    try TorchvisionBlock(
                        w.scope("layer\(s + 1)").scope(i), inPlanes: inPlanes, planes: planes,
                        stride: i == 0 && s > 0 ? 2 : 1, bottleneck: bottleneck,
                        widthPerGroup: config.widthPerGroup ?? 64))
                inPlanes = planes * (bottleneck ? 4 : 1)
            }
        }
        self.blocks = blocks
        fc = try Linear(w.scope("fc"), inFeatures: inPlanes, outFeatures: config.numClasses)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var out = stem(x)
        activateInPlace(&out, .relu)
        out = maxPool2d(out, kernel: 3, stride: 2, padding: 1)
        for block in blocks { out = block(out) }
        return fc(globalAvgPool(out))
    }
}
