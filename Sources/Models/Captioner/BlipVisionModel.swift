// Port of transformers BlipForConditionalGeneration (modeling_blip.py): the vision half, BlipVisionModel —
// patch embedding + class token + learned positions, pre-norm ViT layers with a fused qkv projection,
// and post_layernorm on the last hidden state (what BLIP's text decoder cross-attends to).
import NN
import Tensor

/// BlipVisionEmbeddings: conv patches, class token in front, positions added.
struct BlipVisionEmbeddings {
    let patchEmbedding: Conv2d
    let classEmbedding: Tensor  // [1, 1, C]
    let positionEmbedding: Tensor  // [1, 1 + patches, C]
    let hiddenSize: Int

    init(_ w: WeightScope, config: BlipVisionConfig) throws {
        let c = config.hiddenSize
        hiddenSize = c
        patchEmbedding = try Conv2d(
            w.scope("patch_embedding"), inChannels: 3, outChannels: c,
            kernel: config.patchSize, stride: config.patchSize)
        classEmbedding = try w.tensor("class_embedding", shape: [1, 1, c])
        positionEmbedding = try w.tensor("position_embedding", shape: [1, config.gridSize * config.gridSize + 1, c])
    }

    /// pixels [B, 3, H, W] → [B, 1 + patches, C]
    func callAsFunction(_ pixels: Tensor) -> Tensor {
        let b = pixels.shape[0], c = hiddenSize
        let patches = patchEmbedding(pixels)  // [B, C, gh, gw]
        let n = patches.shape[2] * patches.shape[3]
        precondition(
            n + 1 <= positionEmbedding.shape[1],
            "BLIP vision: \(n) patches but only \(positionEmbedding.shape[1] - 1) positions")
        let tokens = permute(patches.reshaped([b, c, n]), [0, 2, 1])  // [B, N, C]
        let cls = concat(Array(repeating: classEmbedding, count: b), axis: 0)  // [B, 1, C]
        let embeddings = concat([cls, tokens], axis: 1)  // [B, 1 + N, C]
        // transformers adds position_embedding[:, :1 + N] (all of it at the configured image size).
        return embeddings + narrow(positionEmbedding, axis: 1, start: 0, length: n + 1)
    }
}

/// BlipAttention: one Linear makes q, k and v; scale head_dim^-0.5; `projection` mixes the heads.
struct BlipVisionAttention {
    let qkv: Linear
    let projection: Linear
    let heads: Int
    let dim: Int

    init(_ w: WeightScope, dim: Int, heads: Int) throws {
        qkv = try Linear(w.scope("qkv"), inFeatures: dim, outFeatures: 3 * dim)
        projection = try Linear(w.scope("projection"), inFeatures: dim, outFeatures: dim)
        self.heads = heads
        self.dim = dim
    }

    /// x [B, L, C] → [B, L, C]
    func callAsFunction(_ x: Tensor) -> Tensor {
        // qkv reshapes to [B, L, 3, H, D]: q, k and v are consecutive C-wide column blocks.
        let parts = split(qkv(x), sizes: [dim, dim, dim], axis: 2)  // 3 × [B, L, H·D]
        let headDim = dim / heads
        let context = attention(
            q: parts[0], k: parts[1], v: parts[2], heads: heads,
            scale: 1 / Float(headDim).squareRoot())
        return projection(context)
    }
}

/// BlipMLP: fc1 → act → fc2.
struct BlipMLP {
    let fc1: Linear
    let fc2: Linear
    let activation: Activation

    init(_ w: WeightScope, dim: Int, hidden: Int, activation: Activation) throws {
        fc1 = try Linear(w.scope("fc1"), inFeatures: dim, outFeatures: hidden)
        fc2 = try Linear(w.scope("fc2"), inFeatures: hidden, outFeatures: dim)
        self.activation = activation
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = fc1(x)
        activateInPlace(&h, activation)
        return fc2(h)
    }
}

/// BlipEncoderLayer: pre-norm residual blocks.
struct BlipEncoderLayer {
    let layerNorm1: LayerNorm
    let selfAttention: BlipVisionAttention
    let layerNorm2: LayerNorm
    let mlp: BlipMLP

    init(_ w: WeightScope, config: BlipVisionConfig, activation: Activation) throws {
        let c = config.hiddenSize
        layerNorm1 = try LayerNorm(w.scope("layer_norm1"), dim: c, eps: config.layerNormEps)
        selfAttention = try BlipVisionAttention(w.scope("self_attn"), dim: c, heads: config.numAttentionHeads)
        layerNorm2 = try LayerNorm(w.scope("layer_norm2"), dim: c, eps: config.layerNormEps)
        mlp = try BlipMLP(w.scope("mlp"), dim: c, hidden: config.intermediateSize, activation: activation)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        // self-attention
        var h = x + selfAttention(layerNorm1(x))
        // feed-forward
        addInPlace(&h, mlp(layerNorm2(h)))
        return h
    }
}

/// BlipVisionModel under `vision_model`.
public struct BlipVisionModel: Sendable {
    let embeddings: BlipVisionEmbeddings
    let layers: [BlipEncoderLayer]
    let postLayerNorm: LayerNorm
    public let config: BlipVisionConfig

    public init(_ w: WeightScope, config: BlipVisionConfig) throws {
        guard let act = Activation(configName: config.hiddenAct) else {
            throw ModelError.badInput("vision_config: unsupported hidden_act '\(config.hiddenAct)'")
        }
        self.config = config
        embeddings = try BlipVisionEmbeddings(w.scope("embeddings"), config: config)
        let encoder = w.scope("encoder").scope("layers")
        layers = try (0..<config.numHiddenLayers).map { try BlipEncoderLayer(encoder.scope($0), config: config, activation: act) }
        postLayerNorm = try LayerNorm(w.scope("post_layernorm"), dim: config.hiddenSize, eps: config.layerNormEps)
    }

    /// pixel_values [B, 3, H, W] → last_hidden_state [B, 1 + patches, C], post-layernormed
    /// (vision_outputs[0], the image embeddings of BlipForConditionalGeneration).
    public func callAsFunction(_ pixels: Tensor) -> Tensor {
        var h = embeddings(pixels)
        for layer in layers { h = layer(h) }
        return postLayerNorm(h)
    }
}
