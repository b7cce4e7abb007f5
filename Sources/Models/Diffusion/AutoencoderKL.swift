// Port of diffusers AutoencoderKL (models/autoencoders/autoencoder_kl.py, vae.py): the encoder
// (DownEncoderBlock2D ×n with asymmetric-pad downsampling, a mid block with one single-head
// attention, GroupNorm → SiLU → conv to mean and log-variance), quant_conv / post_quant_conv, and
// the decoder (mid block, UpDecoderBlock2D ×n). Latents are scaled by config.scaling_factor.
import Foundation
import NN
import Tensor

public struct AutoencoderKLConfig: Codable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var downBlockTypes = ["DownEncoderBlock2D"]
    public var upBlockTypes = ["UpDecoderBlock2D"]
    public var blockOutChannels = [64]
    public var layersPerBlock = 1
    public var actFn = "silu"
    public var latentChannels = 4
    public var normNumGroups = 32
    public var scalingFactor: Float = 0.18215
    public var shiftFactor: Float?
    public var useQuantConv = true
    public var usePostQuantConv = true
    public var midBlockAddAttention = true

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", downBlockTypes = "down_block_types"
        case upBlockTypes = "up_block_types", blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case actFn = "act_fn", latentChannels = "latent_channels", normNumGroups = "norm_num_groups"
        case scalingFactor = "scaling_factor", shiftFactor = "shift_factor", useQuantConv = "use_quant_conv"
        case usePostQuantConv = "use_post_quant_conv", midBlockAddAttention = "mid_block_add_attention"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ k: CodingKeys, _ d: T) throws -> T {
            if (try? c.decodeNil(forKey: k)) == true { return d }
            return try c.decodeIfPresent(T.self, forKey: k) ?? d
        }
        inChannels = try get(.inChannels, inChannels); outChannels = try get(.outChannels, outChannels)
        downBlockTypes = try get(.downBlockTypes, downBlockTypes); upBlockTypes = try get(.upBlockTypes, upBlockTypes)
        blockOutChannels = try get(.blockOutChannels, blockOutChannels); layersPerBlock = try get(.layersPerBlock, layersPerBlock)
        actFn = try get(.actFn, actFn); latentChannels = try get(.latentChannels, latentChannels)
        normNumGroups = try get(.normNumGroups, normNumGroups); scalingFactor = try get(.scalingFactor, scalingFactor)
        shiftFactor = try get(.shiftFactor, nil); useQuantConv = try get(.useQuantConv, useQuantConv)
        usePostQuantConv = try get(.usePostQuantConv, usePostQuantConv)
        midBlockAddAttention = try get(.midBlockAddAttention, midBlockAddAttention)
    }
}

/// The VAE mid-block attention: GroupNorm, one head over all channels, residual.
struct SpatialSelfAttention: Sendable {
    let norm: GroupNorm
    let attn: DiffusersAttention

    init(_ w: WeightScope, channels: Int, groups: Int, eps: Float) throws {
        norm = try GroupNorm(w.scope("group_norm"), groups: groups, channels: channels, eps: eps)
        attn = try DiffusersAttention(w, queryDim: channels, contextDim: nil, heads: 1, headDim: channels, bias: true)
    }

    /// x: [B, C, H, W] → [B, C, H, W]
    func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let tokens = permute(norm(x).reshaped([b, c, h * w]), [0, 2, 1])  // [B, HW, C]
        var out = permute(attn(tokens), [0, 2, 1]).reshaped([b, c, h, w])  // [B, C, H, W]
        addInPlace(&out, x)
        return out
    }
}

/// UNetMidBlock2D without time embedding: resnet, attention, resnet.
struct VAEMidBlock: Sendable {
    let resnets: [ResnetBlock2D]
    let attention: SpatialSelfAttention?

    init(_ w: WeightScope, channels: Int, groups: Int, addAttention: Bool) throws {
        resnets = try (0..<2).map {
            try ResnetBlock2D(w.scope("resnets").scope($0), inChannels: channels, outChannels: channels, tembChannels: nil, groups: groups, eps: 1e-6)
        }
        attention = addAttention ? try SpatialSelfAttention(w.scope("attentions.0"), channels: channels, groups: groups, eps: 1e-6) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnets[0](x, temb: nil)
        if let attention { h = attention(h) }
        return resnets[1](h, temb: nil)
    }
}

struct VAEEncoder: Sendable {
    let convIn: Conv2d
    let blocks: [(resnets: [ResnetBlock2D], down: Downsample2D?)]
    let mid: VAEMidBlock
    let normOut: GroupNorm
    let convOut: Conv2d

    init(_ w: WeightScope, _ c: AutoencoderKLConfig) throws {
        let ch = c.blockOutChannels
        convIn = try Conv2d(w.scope("conv_in"), inChannels: c.inChannels, outChannels: ch[0], kernel: 3, padding: 1)
        var output = ch[0]
        var blocks: [(resnets: [ResnetBlock2D], down: Downsample2D?)] = []
        for i in 0..<ch.count {
            let input = output
            output = ch[i]
            let b = w.scope("down_blocks").scope(i)
            let resnets = try (0..<c.layersPerBlock).map {
                try ResnetBlock2D(
                    b.scope("resnets").scope($0), inChannels: $0 == 0 ? input : output, outChannels: output,
                    tembChannels: nil, groups: c.normNumGroups, eps: 1e-6)
            }
            let down = i < ch.count - 1 ? try Downsample2D(b.scope("downsamplers.0"), channels: output, padding: 0) : nil
            blocks.append((resnets, down))
        }
        self.blocks = blocks
        mid = try VAEMidBlock(w.scope("mid_block"), channels: ch[ch.count - 1], groups: c.normNumGroups, addAttention: c.midBlockAddAttention)
        normOut = try GroupNorm(w.scope("conv_norm_out"), groups: c.normNumGroups, channels: ch[ch.count - 1], eps: 1e-6)
        convOut = try Conv2d(w.scope("conv_out"), inChannels: ch[ch.count - 1], outChannels: 2 * c.latentChannels, kernel: 3, padding: 1)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = convIn(x)
        for block in blocks {
            for r in block.resnets { h = r(h, temb: nil) }
            if let d = block.down { h = d(h) }
        }
        h = normOut(mid(h))
        activateInPlace(&h, .silu)
        return convOut(h)
    }
}

struct VAEDecoder: Sendable {
    let convIn: Conv2d
    let mid: VAEMidBlock
    let blocks: [(resnets: [ResnetBlock2D], up: Upsample2D?)]
    let normOut: GroupNorm
    let convOut: Conv2d

    init(_ w: WeightScope, _ c: AutoencoderKLConfig) throws {
        let rev = Array(c.blockOutChannels.reversed())
        convIn = try Conv2d(w.scope("conv_in"), inChannels: c.latentChannels, outChannels: rev[0], kernel: 3, padding: 1)
        mid = try VAEMidBlock(w.scope("mid_block"), channels: rev[0], groups: c.normNumGroups, addAttention: c.midBlockAddAttention)
        var output = rev[0]
        var blocks: [(resnets: [ResnetBlock2D], up: Upsample2D?)] = []
        for i in 0..<rev.count {
            let prev = output
            output = rev[i]
            let b = w.scope("up_blocks").scope(i)
            let resnets = try (0..<(c.layersPerBlock + 1)).map {
                try ResnetBlock2D(
                    b.scope("resnets").scope($0), inChannels: $0 == 0 ? prev : output, outChannels: output,
                    tembChannels: nil, groups: c.normNumGroups, eps: 1e-6)
            }
            let up = i < rev.count - 1 ? try Upsample2D(b.scope("upsamplers.0"), channels: output) : nil
            blocks.append((resnets, up))
        }
        self.blocks = blocks
        normOut = try GroupNorm(w.scope("conv_norm_out"), groups: c.normNumGroups, channels: rev[rev.count - 1], eps: 1e-6)
        convOut = try Conv2d(w.scope("conv_out"), inChannels: rev[rev.count - 1], outChannels: c.outChannels, kernel: 3, padding: 1)
    }

    func callAsFunction(_ z: Tensor) -> Tensor {
        var h = mid(convIn(z))
        for block in blocks {
            for r in block.resnets { h = r(h, temb: nil) }
            if let u = block.up { h = u(h) }
        }
        h = normOut(h)
        activateInPlace(&h, .silu)
        return convOut(h)
    }
}

public struct AutoencoderKL: Sendable {
    public let config: AutoencoderKLConfig
    let encoder: VAEEncoder
    let decoder: VAEDecoder
    let quantConv: Conv2d?
    let postQuantConv: Conv2d?
    public let parameterCount: Int

    /// SD 1.x's VAE ships its mid-block attention under diffusers' deprecated AttentionBlock names
    /// (query, key, value, proj_attn); diffusers renames them on load (_convert_deprecated_attention_blocks)
    /// and so does lgap.
    static func currentAttentionName(_ key: String) -> String? {
        for (old, new) in [(".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")]
        where key.contains(".attentions.") && key.contains(old) {
            return key.replacingOccurrences(of: old, with: new)
        }
        return nil
    }

    public init(folder: String) throws {
        let path = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        do { config = try JSONDecoder().decode(AutoencoderKLConfig.self, from: data) } catch { throw ModelError.badConfig(path, describe(error)) }
        for t in config.downBlockTypes where t != "DownEncoderBlock2D" { throw ModelError.badConfig(path, "unsupported down block type '\(t)'") }
        for t in config.upBlockTypes where t != "UpDecoderBlock2D" { throw ModelError.badConfig(path, "unsupported up block type '\(t)'") }
        guard config.actFn == "silu" else { throw ModelError.badConfig(path, "unsupported act_fn '\(config.actFn)'") }
        let store = try WeightStore(folder: folder)
        try store.renameKeys(Self.currentAttentionName)
        let w = WeightScope(store)
        let l2 = 2 * config.latentChannels
        encoder = try VAEEncoder(w.scope("encoder"), config)
        decoder = try VAEDecoder(w.scope("decoder"), config)
        quantConv = config.useQuantConv ? try Conv2d(w.scope("quant_conv"), inChannels: l2, outChannels: l2, kernel: 1) : nil
        postQuantConv =
            config.usePostQuantConv
            ? try Conv2d(w.scope("post_quant_conv"), inChannels: config.latentChannels, outChannels: config.latentChannels, kernel: 1) : nil
        try store.checkAllUsed()
        parameterCount = store.parameterCount
    }

    /// Downsampling factor between image and latent (2^(blocks − 1)).
    public var scaleFactor: Int { 1 << (config.blockOutChannels.count - 1) }

    /// x: [B, 3, H, W] in [−1, 1] → (mean, std) of the latent posterior, each [B, latent, H/f, W/f].
    public func encode(_ x: Tensor) -> (mean: Tensor, std: Tensor) {
        var moments = encoder(x)
        if let quantConv { moments = quantConv(moments) }
        let parts = chunk(moments, parts: 2, axis: 1)
        // DiagonalGaussianDistribution: logvar clamped to [−30, 20], std = exp(logvar / 2).
        let logvar = clamp(parts[1], -30, 20)
        var std = logvar * Float(0.5)
        let n = std.count
        std.withMutableData { p in for i in 0..<n { p[i] = expf(p[i]) } }
        return (parts[0], std)
    }

    /// z: [B, latent, h, w] (unscaled) → image [B, 3, h·f, w·f] in ≈[−1, 1]
    public func decode(_ z: Tensor) -> Tensor {
        decoder(postQuantConv.map { $0(z) } ?? z)
    }
}
