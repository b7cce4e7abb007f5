// Port of diffusers UNet2DConditionModel (models/unets/unet_2d_condition.py) for SD 1.x/2.x-style
// configurations and small pixel-space models: sinusoidal timestep embedding → MLP, conv_in,
// down blocks collecting skips, cross-attention mid block, up blocks consuming skips, GroupNorm →
// SiLU → conv_out. Predicts the noise (or v / x0, as the scheduler's prediction_type says).
import Foundation
import NN
import Tensor

public struct UNet2DConditionModel: Sendable {
    public let config: UNetConfig
    let timeLinear1: Linear, timeLinear2: Linear
    let convIn: Conv2d
    let downBlocks: [UNetDownBlock]
    let midBlock: UNetMidBlockCrossAttn?
    let upBlocks: [UNetUpBlock]
    let convNormOut: GroupNorm
    let convOut: Conv2d
    public let parameterCount: Int

    /// A diffusers UNet2DConditionModel folder (config.json + diffusion_pytorch_model.safetensors).
    public init(folder: String) throws {
        let path = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        do { config = try JSONDecoder().decode(UNetConfig.self, from: data) } catch { throw ModelError.badConfig(path, describe(error)) }
        try config.validate(path: path)
        let store = try WeightStore(folder: folder)
        let w = WeightScope(store)
        let c = config
        let ch = c.blockOutChannels
        let timeDim = c.timeEmbeddingDim ?? ch[0] * 4
        timeLinear1 = try Linear(w.scope("time_embedding.linear_1"), inFeatures: ch[0], outFeatures: timeDim)
        timeLinear2 = try Linear(w.scope("time_embedding.linear_2"), inFeatures: timeDim, outFeatures: timeDim)
        convIn = try Conv2d(
            w.scope("conv_in"), inChannels: c.inChannels, outChannels: ch[0], kernel: c.convInKernel,
            padding: (c.convInKernel - 1) / 2)
        var down: [UNetDownBlock] = []
        var output = ch[0]
        for (i, type) in c.downBlockTypes.enumerated() {
            let input = output
            output = ch[i]
            down.append(
                try UNetDownBlock(
                    w.scope("down_blocks").scope(i), inChannels: input, outChannels: output, tembChannels: timeDim,
                    layers: c.layersPerBlock.value(i), crossAttention: type == "CrossAttnDownBlock2D",
                    heads: c.heads(i), crossAttentionDim: c.crossAttentionDim.value(i),
                    transformerLayers: c.transformerLayersPerBlock.value(i), addDownsample: i < ch.count - 1, c: c))
        }
        downBlocks = down
        midBlock =
            c.midBlockType == nil
            ? nil
            : try UNetMidBlockCrossAttn(
                w.scope("mid_block"), channels: ch[ch.count - 1], tembChannels: timeDim,
                heads: c.heads(ch.count - 1), crossAttentionDim: c.crossAttentionDim.value(ch.count - 1),
                transformerLayers: c.transformerLayersPerBlock.value(ch.count - 1), c: c)
        var up: [UNetUpBlock] = []
        let reversed = Array(ch.reversed())
        let n = ch.count
        output = reversed[0]
        for (i, type) in c.upBlockTypes.enumerated() {
            let prev = output
            output = reversed[i]
            let input = reversed[min(i + 1, n - 1)]
            let j = n - 1 - i  // per-block lists are given in down-block order
            up.append(
                try UNetUpBlock(
                    w.scope("up_blocks").scope(i), inChannels: input, prevOutputChannels: prev, outChannels: output,
                    tembChannels: timeDim, layers: c.layersPerBlock.value(j) + 1,
                    crossAttention: type == "CrossAttnUpBlock2D", heads: c.heads(j),
                    crossAttentionDim: c.crossAttentionDim.value(j),
                    transformerLayers: c.transformerLayersPerBlock.value(j), addUpsample: i < n - 1, c: c))
        }
        upBlocks = up
        convNormOut = try GroupNorm(w.scope("conv_norm_out"), groups: c.normNumGroups, channels: ch[0], eps: c.normEps)
        convOut = try Conv2d(
            w.scope("conv_out"), inChannels: ch[0], outChannels: c.outChannels, kernel: c.convOutKernel,
            padding: (c.convOutKernel - 1) / 2)
        try store.checkAllUsed()
        parameterCount = store.parameterCount
    }

    /// Sinusoidal embedding of timesteps [B] → [B, dim] (diffusers get_timestep_embedding, float32).
    func timestepEmbedding(_ timesteps: [Float], dim: Int) -> Tensor {
        let half = dim / 2
        let shift = Float(config.freqShift)
        let freqs = (0..<half).map { i -> Float in
            let exponent = -Float(log(10000.0)) * Float(i) / (Float(half) - shift)
            return expf(exponent)
        }
        var out = [Float](repeating: 0, count: timesteps.count * dim)
        for (b, t) in timesteps.enumerated() {
            for i in 0..<half {
                let arg = t * freqs[i]
                let (s, co) = (sinf(arg), cosf(arg))
                // [sin, cos], or [cos, sin] with flip_sin_to_cos; an odd dim leaves a zero column.
                out[b * dim + i] = config.flipSinToCos ? co : s
                out[b * dim + half + i] = config.flipSinToCos ? s : co
            }
        }
        return Tensor(shape: [timesteps.count, dim], data: out)
    }

    /// sample: [B, C, H, W], timesteps: one per batch item, context: [B, S, D] → [B, Cout, H, W]
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor) -> Tensor {
        precondition(
            timesteps.count == sample.shape[0] && context.shape[0] == sample.shape[0],
            "UNet batch mismatch: sample \(sample.shape), \(timesteps.count) timesteps, context \(context.shape)")
        // time embedding
        var temb = timeLinear1(timestepEmbedding(timesteps, dim: config.blockOutChannels[0]))
        activateInPlace(&temb, .silu)
        temb = timeLinear2(temb)
        // down
        var h = convIn(sample)
        var skips = [h]
        for block in downBlocks {
            let (out, s) = block(h, temb: temb, context: context)
            h = out
            skips += s
        }
        // mid
        if let midBlock { h = midBlock(h, temb: temb, context: context) }
        // up
        for (i, block) in upBlocks.enumerated() {
            let n = block.resnets.count
            let mine = Array(skips.suffix(n))
            skips.removeLast(n)
            let size = i < upBlocks.count - 1 ? skips.last.map { ($0.shape[2], $0.shape[3]) } : nil
            h = block(h, skips: mine, temb: temb, context: context, upsampleSize: size)
        }
        // out
        h = convNormOut(h)
        activateInPlace(&h, .silu)
        return convOut(h)
    }
}
