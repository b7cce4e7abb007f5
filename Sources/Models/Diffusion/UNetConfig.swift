// diffusers UNet2DConditionModel's config.json, restricted to the configuration space lgap runs
// (Stable Diffusion 1.x/2.x-style UNets and small pixel-space ones). Values the port does not
// implement are refused by name rather than ignored.
import Foundation

/// A config value that may be one number for all blocks or one per block.
public enum PerBlock: Codable, Sendable, Equatable {
    case all(Int)
    case each([Int])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .all(v) } else { self = .each(try c.decode([Int].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .all(let v): try c.encode(v)
        case .each(let v): try c.encode(v)
        }
    }

    public func value(_ i: Int) -> Int {
        switch self {
        case .all(let v): return v
        case .each(let v): return v[min(i, v.count - 1)]
        }
    }
}

public struct UNetConfig: Codable, Sendable {
    public var sampleSize: Int?
    public var inChannels = 4
    public var outChannels = 4
    public var centerInputSample = false
    public var flipSinToCos = true
    public var freqShift = 0
    public var downBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    public var midBlockType: String? = "UNetMidBlock2DCrossAttn"
    public var upBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    public var blockOutChannels = [320, 640, 1280, 1280]
    public var layersPerBlock = PerBlock.all(2)
    public var downsamplePadding = 1
    public var midBlockScaleFactor: Float = 1
    public var actFn = "silu"
    public var normNumGroups = 32
    public var normEps: Float = 1e-5
    public var crossAttentionDim = PerBlock.all(1280)
    public var transformerLayersPerBlock = PerBlock.all(1)
    public var attentionHeadDim = PerBlock.all(8)
    public var numAttentionHeads: PerBlock?
    public var useLinearProjection = false
    public var upcastAttention = false
    public var onlyCrossAttention = false
    public var dualCrossAttention = false
    public var resnetTimeScaleShift = "default"
    public var classEmbedType: String?
    public var additionEmbedType: String?
    public var timeEmbeddingType = "positional"
    public var timeEmbeddingDim: Int?
    public var timeCondProjDim: Int?
    public var encoderHidDim: Int?
    public var convInKernel = 3
    public var convOutKernel = 3

    enum CodingKeys: String, CodingKey {
        case sampleSize = "sample_size", inChannels = "in_channels", outChannels = "out_channels"
        case centerInputSample = "center_input_sample", flipSinToCos = "flip_sin_to_cos", freqShift = "freq_shift"
        case downBlockTypes = "down_block_types", midBlockType = "mid_block_type", upBlockTypes = "up_block_types"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case downsamplePadding = "downsample_padding", midBlockScaleFactor = "mid_block_scale_factor", actFn = "act_fn"
        case normNumGroups = "norm_num_groups", normEps = "norm_eps", crossAttentionDim = "cross_attention_dim"
        case transformerLayersPerBlock = "transformer_layers_per_block", attentionHeadDim = "attention_head_dim"
        case numAttentionHeads = "num_attention_heads", useLinearProjection = "use_linear_projection"
        case upcastAttention = "upcast_attention", onlyCrossAttention = "only_cross_attention"
        case dualCrossAttention = "dual_cross_attention", resnetTimeScaleShift = "resnet_time_scale_shift"
        case classEmbedType = "class_embed_type", additionEmbedType = "addition_embed_type"
        case timeEmbeddingType = "time_embedding_type", timeEmbeddingDim = "time_embedding_dim"
        case timeCondProjDim = "time_cond_proj_dim", encoderHidDim = "encoder_hid_dim"
        case convInKernel = "conv_in_kernel", convOutKernel = "conv_out_kernel"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            // JSON null means "the library default", as in diffusers.
            if (try? c.decodeNil(forKey: key)) == true { return fallback }
            return try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        sampleSize = try get(.sampleSize, nil)
        inChannels = try get(.inChannels, inChannels)
        outChannels = try get(.outChannels, outChannels)
        centerInputSample = try get(.centerInputSample, centerInputSample)
        flipSinToCos = try get(.flipSinToCos, flipSinToCos)
        freqShift = try get(.freqShift, freqShift)
        downBlockTypes = try get(.downBlockTypes, downBlockTypes)
        midBlockType = try get(.midBlockType, midBlockType)
        upBlockTypes = try get(.upBlockTypes, upBlockTypes)
        blockOutChannels = try get(.blockOutChannels, blockOutChannels)
        layersPerBlock = try get(.layersPerBlock, layersPerBlock)
        downsamplePadding = try get(.downsamplePadding, downsamplePadding)
        midBlockScaleFactor = try get(.midBlockScaleFactor, midBlockScaleFactor)
        actFn = try get(.actFn, actFn)
        normNumGroups = try get(.normNumGroups, normNumGroups)
        normEps = try get(.normEps, normEps)
        crossAttentionDim = try get(.crossAttentionDim, crossAttentionDim)
        transformerLayersPerBlock = try get(.transformerLayersPerBlock, transformerLayersPerBlock)
        attentionHeadDim = try get(.attentionHeadDim, attentionHeadDim)
        numAttentionHeads = try get(.numAttentionHeads, nil)
        useLinearProjection = try get(.useLinearProjection, useLinearProjection)
        upcastAttention = try get(.upcastAttention, upcastAttention)
        onlyCrossAttention = try get(.onlyCrossAttention, onlyCrossAttention)
        dualCrossAttention = try get(.dualCrossAttention, dualCrossAttention)
        resnetTimeScaleShift = try get(.resnetTimeScaleShift, resnetTimeScaleShift)
        classEmbedType = try get(.classEmbedType, nil)
        additionEmbedType = try get(.additionEmbedType, nil)
        timeEmbeddingType = try get(.timeEmbeddingType, timeEmbeddingType)
        timeEmbeddingDim = try get(.timeEmbeddingDim, nil)
        timeCondProjDim = try get(.timeCondProjDim, nil)
        encoderHidDim = try get(.encoderHidDim, nil)
        convInKernel = try get(.convInKernel, convInKernel)
        convOutKernel = try get(.convOutKernel, convOutKernel)
    }

    /// Heads per block: diffusers reads attention_head_dim as the head count when
    /// num_attention_heads is absent (a historical naming quirk kept for SD checkpoints).
    func heads(_ block: Int) -> Int { (numAttentionHeads ?? attentionHeadDim).value(block) }

    func validate(path: String) throws {
        func refuse(_ what: String) -> ModelError { .badConfig(path, "unsupported UNet configuration: \(what)") }
        let known = ["DownBlock2D", "CrossAttnDownBlock2D"], knownUp = ["UpBlock2D", "CrossAttnUpBlock2D"]
        for t in downBlockTypes where !known.contains(t) { throw refuse("down block type '\(t)'") }
        for t in upBlockTypes where !knownUp.contains(t) { throw refuse("up block type '\(t)'") }
        if let m = midBlockType, m != "UNetMidBlock2DCrossAttn" { throw refuse("mid block type '\(m)'") }
        guard downBlockTypes.count == blockOutChannels.count, upBlockTypes.count == blockOutChannels.count else {
            throw ModelError.badConfig(path, "down_block_types, up_block_types and block_out_channels must have the same length")
        }
        if classEmbedType != nil { throw refuse("class_embed_type") }
        if additionEmbedType != nil { throw refuse("addition_embed_type") }
        if timeEmbeddingType != "positional" { throw refuse("time_embedding_type '\(timeEmbeddingType)'") }
        if timeCondProjDim != nil { throw refuse("time_cond_proj_dim") }
        if encoderHidDim != nil { throw refuse("encoder_hid_dim") }
        if resnetTimeScaleShift != "default" { throw refuse("resnet_time_scale_shift '\(resnetTimeScaleShift)'") }
        if dualCrossAttention || onlyCrossAttention { throw refuse("dual/only cross-attention") }
        if actFn != "silu" { throw refuse("act_fn '\(actFn)'") }
        if centerInputSample { throw refuse("center_input_sample") }
        for ch in blockOutChannels where ch % normNumGroups != 0 {
            throw ModelError.badConfig(path, "block_out_channels \(ch) not divisible by norm_num_groups \(normNumGroups)")
        }
        for (i, ch) in blockOutChannels.enumerated() where ch % heads(i) != 0 {
            throw ModelError.badConfig(path, "block_out_channels \(ch) not divisible by \(heads(i)) attention heads")
        }
    }
}
