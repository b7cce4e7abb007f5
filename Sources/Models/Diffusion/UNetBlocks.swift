// Port of diffusers' UNet blocks (models/unets/unet_2d_blocks.py): DownBlock2D /
// CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D / CrossAttnUpBlock2D.
import NN
import Tensor

/// DownBlock2D (no attentions) or CrossAttnDownBlock2D (a Transformer2DModel after each resnet).
struct UNetDownBlock: Sendable {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2DModel]
    let downsampler: Downsample2D?

    init(
        _ w: WeightScope, inChannels: Int, outChannels: Int, tembChannels: Int, layers: Int, crossAttention: Bool,
        heads: Int, crossAttentionDim: Int, transformerLayers: Int, addDownsample: Bool, c: UNetConfig
    ) throws {
        resnets = try (0..<layers).map {
            try ResnetBlock2D(
                w.scope("resnets").scope($0), inChannels: $0 == 0 ? inChannels : outChannels, outChannels: outChannels,
                tembChannels: tembChannels, groups: c.normNumGroups, eps: c.normEps)
        }
        attentions =
            crossAttention
            ? try (0..<layers).map {
                try Transformer2DModel(
                    w.scope("attentions").scope($0), channels: outChannels, heads: heads,
                    crossAttentionDim: crossAttentionDim, layers: transformerLayers, groups: c.normNumGroups,
                    linearProjection: c.useLinearProjection)
            } : []
        downsampler = addDownsample ? try Downsample2D(w.scope("downsamplers.0"), channels: outChannels, padding: c.downsamplePadding) : nil
    }

    /// → (output, skip connections in order)
    func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor) -> (Tensor, [Tensor]) {
        var h = x
        var skips: [Tensor] = []
        for (i, resnet) in resnets.enumerated() {
            h = resnet(h, temb: temb)
            if !attentions.isEmpty { h = attentions[i](h, context: context) }
            skips.append(h)
        }
        if let downsampler {
            h = downsampler(h)
            skips.append(h)
        }
        return (h, skips)
    }
}

/// UNetMidBlock2DCrossAttn: resnet, then (attention, resnet) pairs.
struct UNetMidBlockCrossAttn: Sendable {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2DModel]

    init(
        _ w: WeightScope, channels: Int, tembChannels: Int, heads: Int, crossAttentionDim: Int, transformerLayers: Int,
        c: UNetConfig
    ) throws {
        resnets = try (0..<2).map {
            try ResnetBlock2D(
                w.scope("resnets").scope($0), inChannels: channels, outChannels: channels, tembChannels: tembChannels,
                groups: c.normNumGroups, eps: c.normEps, outputScaleFactor: c.midBlockScaleFactor)
        }
        attentions = [
            try Transformer2DModel(
                w.scope("attentions.0"), channels: channels, heads: heads, crossAttentionDim: crossAttentionDim,
                layers: transformerLayers, groups: c.normNumGroups, linearProjection: c.useLinearProjection)
        ]
    }

    func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor) -> Tensor {
        var h = resnets[0](x, temb: temb)
        for (attn, resnet) in zip(attentions, resnets.dropFirst()) {
            h = attn(h, context: context)
            h = resnet(h, temb: temb)
        }
        return h
    }
}

/// UpBlock2D or CrossAttnUpBlock2D: each resnet takes the running tensor concatenated with one skip.
struct UNetUpBlock: Sendable {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2DModel]
    let upsampler: Upsample2D?

    init(
        _ w: WeightScope, inChannels: Int, prevOutputChannels: Int, outChannels: Int, tembChannels: Int, layers: Int,
        crossAttention: Bool, heads: Int, crossAttentionDim: Int, transformerLayers: Int, addUpsample: Bool, c: UNetConfig
    ) throws {
        resnets = try (0..<layers).map { i in
            let skip = i == layers - 1 ? inChannels : outChannels
            let input = i == 0 ? prevOutputChannels : outChannels
            return try ResnetBlock2D(
                w.scope("resnets").scope(i), inChannels: input + skip, outChannels: outChannels,
                tembChannels: tembChannels, groups: c.normNumGroups, eps: c.normEps)
        }
        attentions =
            crossAttention
            ? try (0..<layers).map {
                try Transformer2DModel(
                    w.scope("attentions").scope($0), channels: outChannels, heads: heads,
                    crossAttentionDim: crossAttentionDim, layers: transformerLayers, groups: c.normNumGroups,
                    linearProjection: c.useLinearProjection)
            } : []
        upsampler = addUpsample ? try Upsample2D(w.scope("upsamplers.0"), channels: outChannels) : nil
    }

    /// skips: this block's skip connections, consumed from the last; upsampleSize: the next skip's size.
    func callAsFunction(_ x: Tensor, skips: [Tensor], temb: Tensor, context: Tensor, upsampleSize: (Int, Int)?) -> Tensor {
        var h = x
        var remaining = skips
        for (i, resnet) in resnets.enumerated() {
            let skip = remaining.removeLast()
            h = resnet(concat([h, skip], axis: 1), temb: temb)
            if !attentions.isEmpty { h = attentions[i](h, context: context) }
        }
        if let upsampler { h = upsampler(h, size: upsampleSize) }
        return h
    }
}
