// Port of transformers BlipConfig, BlipVisionConfig and BlipTextConfig (configuration_blip.py): the
// config.json of a BlipForConditionalGeneration folder. Absent keys take transformers' defaults;
// values this port cannot honour (other position embeddings, sampling) are load errors.
import Foundation
import Tensor

public struct BlipVisionConfig: Codable, Sendable, Equatable {
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var imageSize = 384
    public var patchSize = 16
    public var hiddenAct = "gelu"
    public var layerNormEps: Float = 1e-5

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case imageSize = "image_size", patchSize = "patch_size"
        case hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BlipVisionConfig()
        hiddenSize = try c.value(.hiddenSize, default: d.hiddenSize)
        intermediateSize = try c.value(.intermediateSize, default: d.intermediateSize)
        numHiddenLayers = try c.value(.numHiddenLayers, default: d.numHiddenLayers)
        numAttentionHeads = try c.value(.numAttentionHeads, default: d.numAttentionHeads)
        imageSize = try c.value(.imageSize, default: d.imageSize)
        patchSize = try c.value(.patchSize, default: d.patchSize)
        hiddenAct = try c.value(.hiddenAct, default: d.hiddenAct)
        layerNormEps = try c.value(.layerNormEps, default: d.layerNormEps)
    }

    /// Patches per side of a square `imageSize` input.
    public var gridSize: Int { imageSize / patchSize }
}

public struct BlipTextConfig: Codable, Sendable, Equatable {
    public var vocabSize = 30524
    public var hiddenSize = 768
    /// Overwritten with the vision hidden size by BlipConfig, as transformers does.
    public var encoderHiddenSize = 768
    public var intermediateSize = 3072
    public var numHiddenLayers = 12
    public var numAttentionHeads = 8
    public var maxPositionEmbeddings = 512
    public var hiddenAct = "gelu"
    public var layerNormEps: Float = 1e-12
    public var bosTokenId = 30522
    public var eosTokenId = 2
    public var padTokenId = 0
    public var sepTokenId = 102
    /// Only "absolute" exists in BlipTextConfig; transformers reads it with getattr.
    public var positionEmbeddingType = "absolute"
    /// Legacy generation parameters stored in text_config (PretrainedConfig keeps them): transformers'
    /// BLIP generate() takes its defaults from here.
    public var generation = BlipGenerationConfig()

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", encoderHiddenSize = "encoder_hidden_size"
        case intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", maxPositionEmbeddings = "max_position_embeddings"
        case hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
        case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id", padTokenId = "pad_token_id"
        case sepTokenId = "sep_token_id", positionEmbeddingType = "position_embedding_type"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BlipTextConfig()
        vocabSize = try c.value(.vocabSize, default: d.vocabSize)
        hiddenSize = try c.value(.hiddenSize, default: d.hiddenSize)
        encoderHiddenSize = try c.value(.encoderHiddenSize, default: d.encoderHiddenSize)
        intermediateSize = try c.value(.intermediateSize, default: d.intermediateSize)
        numHiddenLayers = try c.value(.numHiddenLayers, default: d.numHiddenLayers)
        numAttentionHeads = try c.value(.numAttentionHeads, default: d.numAttentionHeads)
        maxPositionEmbeddings = try c.value(.maxPositionEmbeddings, default: d.maxPositionEmbeddings)
        hiddenAct = try c.value(.hiddenAct, default: d.hiddenAct)
        layerNormEps = try c.value(.layerNormEps, default: d.layerNormEps)
        bosTokenId = try c.value(.bosTokenId, default: d.bosTokenId)
        eosTokenId = try c.value(.eosTokenId, default: d.eosTokenId)
        padTokenId = try c.value(.padTokenId, default: d.padTokenId)
        sepTokenId = try c.value(.sepTokenId, default: d.sepTokenId)
        positionEmbeddingType = try c.value(.positionEmbeddingType, default: d.positionEmbeddingType)
        generation = try BlipGenerationConfig(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(encoderHiddenSize, forKey: .encoderHiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(hiddenAct, forKey: .hiddenAct)
        try c.encode(layerNormEps, forKey: .layerNormEps)
        try c.encode(bosTokenId, forKey: .bosTokenId)
        try c.encode(eosTokenId, forKey: .eosTokenId)
        try c.encode(padTokenId, forKey: .padTokenId)
        try c.encode(sepTokenId, forKey: .sepTokenId)
        try c.encode(positionEmbeddingType, forKey: .positionEmbeddingType)
        try generation.encode(to: encoder)
    }
}

public struct BlipConfig: Codable, Sendable, Equatable {
    public var textConfig = BlipTextConfig()
    public var visionConfig = BlipVisionConfig()

    enum CodingKeys: String, CodingKey {
        case textConfig = "text_config", visionConfig = "vision_config"
    }

    public init(textConfig: BlipTextConfig = .init(), visionConfig: BlipVisionConfig = .init()) {
        self.textConfig = textConfig
        self.visionConfig = visionConfig
        self.textConfig.encoderHiddenSize = visionConfig.hiddenSize
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            textConfig: try c.value(.textConfig, default: BlipTextConfig()),
            visionConfig: try c.value(.visionConfig, default: BlipVisionConfig()))
    }

    /// Reads and checks `folder/config.json`.
    public static func load(folder: String) throws -> BlipConfig {
        let path = (folder as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        let config: BlipConfig
        do {
            config = try JSONDecoder().decode(BlipConfig.self, from: data)
        } catch {
            throw ModelError.badConfig(path, describe(error))
        }
        try config.validate(path: path)
        return config
    }

    func validate(path: String) throws {
        func bad(_ m: String) -> ModelError { .badConfig(path, m) }
        let v = visionConfig, t = textConfig
        guard v.hiddenSize > 0, v.numAttentionHeads > 0, v.hiddenSize % v.numAttentionHeads == 0 else {
            throw bad("vision_config: hidden_size \(v.hiddenSize) does not split into \(v.numAttentionHeads) heads")
        }
        guard v.patchSize > 0, v.imageSize >= v.patchSize else {
            throw bad("vision_config: image_size \(v.imageSize) and patch_size \(v.patchSize) give no patches")
        }
        guard t.hiddenSize > 0, t.numAttentionHeads > 0, t.hiddenSize % t.numAttentionHeads == 0 else {
            throw bad("text_config: hidden_size \(t.hiddenSize) does not split into \(t.numAttentionHeads) heads")
        }
        for (name, act) in [("vision_config", v.hiddenAct), ("text_config", t.hiddenAct)] where Activation(configName: act) == nil {
            throw bad("\(name): unsupported hidden_act '\(act)'")
        }
        guard t.positionEmbeddingType == "absolute" else {
            throw bad("text_config: position_embedding_type '\(t.positionEmbeddingType)' is not supported (only absolute)")
        }
        for (name, id) in [("bos_token_id", t.bosTokenId), ("pad_token_id", t.padTokenId), ("sep_token_id", t.sepTokenId)]
        where !(0..<t.vocabSize).contains(id) {
            throw bad("text_config: \(name) \(id) outside the vocabulary of \(t.vocabSize)")
        }
        try t.generation.checkSupported(path: path, section: "text_config")
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` when the key is absent or null (Python's kwarg defaults).
    func value<T: Decodable>(_ key: Key, default fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }
}
