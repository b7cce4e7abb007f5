// Port of transformers CLIPTextModel (models/clip/modeling_clip.py): token + position embeddings,
// pre-norm transformer layers with causal self-attention, final layer norm. Returns
// last_hidden_state, which Stable Diffusion feeds to the UNet's cross-attention.
import Foundation
import NN
import Tensor

public struct CLIPTextConfig: Codable, Sendable {
    public var vocabSize: Int = 49408
    public var hiddenSize: Int = 512
    public var intermediateSize: Int = 2048
    public var numHiddenLayers: Int = 12
    public var numAttentionHeads: Int = 8
    public var maxPositionEmbeddings: Int = 77
    public var hiddenAct: String = "quick_gelu"
    public var layerNormEps: Float = 1e-5

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? numAttentionHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? maxPositionEmbeddings
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? hiddenAct
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? layerNormEps
    }
}

struct CLIPEncoderLayer: Sendable {
    let layerNorm1: LayerNorm
    let qProj: Linear, kProj: Linear, vProj: Linear, outProj: Linear
    let layerNorm2: LayerNorm
    let fc1: Linear, fc2: Linear
    let heads: Int
    let act: Activation

    init(_ w: WeightScope, _ c: CLIPTextConfig, act: Activation) throws {
        let d = c.hiddenSize
        layerNorm1 = try LayerNorm(w.scope("layer_norm1"), dim: d, eps: c.layerNormEps)
        let a = w.scope("self_attn")
        qProj = try Linear(a.scope("q_proj"), inFeatures: d, outFeatures: d)
        kProj = try Linear(a.scope("k_proj"), inFeatures: d, outFeatures: d)
        vProj = try Linear(a.scope("v_proj"), inFeatures: d, outFeatures: d)
        outProj = try Linear(a.scope("out_proj"), inFeatures: d, outFeatures: d)
        layerNorm2 = try LayerNorm(w.scope("layer_norm2"), dim: d, eps: c.layerNormEps)
        fc1 = try Linear(w.scope("mlp.fc1"), inFeatures: d, outFeatures: c.intermediateSize)
        fc2 = try Linear(w.scope("mlp.fc2"), inFeatures: c.intermediateSize, outFeatures: d)
        heads = c.numAttentionHeads
        self.act = act
    }

    /// x: [B, L, D] → [B, L, D]
    func callAsFunction(_ x: Tensor) -> Tensor {
        // self-attention (causal), pre-norm
        let h = layerNorm1(x)
        let attn = attention(q: qProj(h), k: kProj(h), v: vProj(h), heads: heads, causal: true)
        var out = x + outProj(attn)
        // feed-forward, pre-norm
        var f = fc1(layerNorm2(out))
        activateInPlace(&f, act)
        addInPlace(&out, fc2(f))
        return out
    }
}

public struct CLIPTextModel: Sendable {
    public let config: CLIPTextConfig
    let tokenEmbedding: Embedding
    let positionEmbedding: Embedding
    let layers: [CLIPEncoderLayer]
    let finalLayerNorm: LayerNorm
    public let parameterCount: Int

    /// A transformers CLIPTextModel folder (config.json + model.safetensors).
    public init(folder: String) throws {
        let configPath = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else { throw ModelError.missingFile(configPath) }
        do { config = try JSONDecoder().decode(CLIPTextConfig.self, from: data) } catch {
            throw ModelError.badConfig(configPath, describe(error))
        }
        guard let act = Activation(configName: config.hiddenAct) else {
            throw ModelError.badConfig(configPath, "unsupported hidden_act '\(config.hiddenAct)'")
        }
        guard config.hiddenSize % config.numAttentionHeads == 0 else {
            throw ModelError.badConfig(configPath, "hidden_size \(config.hiddenSize) not divisible by \(config.numAttentionHeads) heads")
        }
        let store = try WeightStore(folder: folder)
        // Older transformers saved the position_ids buffer; it carries no weights.
        store.ignore { $0.hasSuffix("embeddings.position_ids") }
        let w = WeightScope(store).scope("text_model")
        let c = config
        tokenEmbedding = try Embedding(w.scope("embeddings.token_embedding"), count: c.vocabSize, dim: c.hiddenSize)
        positionEmbedding = try Embedding(w.scope("embeddings.position_embedding"), count: c.maxPositionEmbeddings, dim: c.hiddenSize)
        layers = try (0..<c.numHiddenLayers).map { try CLIPEncoderLayer(w.scope("encoder.layers").scope($0), c, act: act) }
        finalLayerNorm = try LayerNorm(w.scope("final_layer_norm"), dim: c.hiddenSize, eps: c.layerNormEps)
        try store.checkAllUsed()
        parameterCount = store.parameterCount
    }

    /// ids: B sequences of equal length L ≤ max_position_embeddings → last_hidden_state [B, L, D]
    public func callAsFunction(_ ids: [[Int]]) throws -> Tensor {
        guard let l = ids.first?.count, l > 0, ids.allSatisfy({ $0.count == l }) else {
            throw ModelError.badInput("CLIP text encoder needs equal-length, non-empty token sequences")
        }
        guard l <= config.maxPositionEmbeddings else {
            throw ModelError.badInput("sequence of \(l) tokens exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        guard ids.allSatisfy({ $0.allSatisfy { $0 >= 0 && $0 < config.vocabSize } }) else {
            throw ModelError.badInput("token id outside the vocabulary of \(config.vocabSize)")
        }
        let b = ids.count, d = config.hiddenSize
        let tokens = tokenEmbedding(ids.flatMap { $0 }).reshaped([b, l, d])
        let positions = positionEmbedding(Array(0..<l)).reshaped([1, l, d])
        var x = tokens + positions
        for layer in layers { x = layer(x) }
        return finalLayerNorm(x)
    }
}
