// The basic layers, each built from a weight scope with PyTorch's parameter names
// (weight, bias) and shapes, and applied with callAsFunction.
import Foundation
import Tensor

/// nn.Linear: y = x·Wᵀ + b. weight [out, in], bias [out]. The weight is also kept prepacked for the
/// engine GEMM (see PackedWeights).
public struct Linear: Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    let packed: PackedWeights?

    public init(_ w: WeightScope, inFeatures: Int, outFeatures: Int, bias hasBias: Bool = true) throws {
        self.init(
            weight: try w.tensor("weight", shape: [outFeatures, inFeatures]),
            bias: hasBias ? try w.tensor("bias", shape: [outFeatures]) : nil)
    }

    public init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
        packed = BLAS.backend == .engine ? PackedWeights(linearWeight: weight) : nil
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// x: [..., in] → [..., out]
    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias, packed: packed) }
}

/// nn.Conv2d (groups 1, dilation 1). weight [Cout, Cin, k, k], bias [Cout]; the weight is also kept
/// prepacked for the engine GEMM.
public struct Conv2d: Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int
    public let padding: Int
    let packed: PackedWeights?
    let direct: DirectConvWeights?
    let winograd: WinogradWeights?

    public init(
        _ w: WeightScope, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1,
        padding: Int = 0, bias hasBias: Bool = true
    ) throws {
        self.init(
            weight: try w.tensor("weight", shape: [outChannels, inChannels, kernel, kernel]),
            bias: hasBias ? try w.tensor("bias", shape: [outChannels]) : nil, stride: stride, padding: padding)
    }

    public init(weight: Tensor, bias: Tensor?, stride: Int, padding: Int) {
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        // The weights are laid out once, for the one path this layer's shape takes (ConvAlgorithm).
        let algorithm = ConvAlgorithm.choose(
            cout: weight.shape[0], cin: weight.shape[1], kernel: (weight.shape[2], weight.shape[3]),
            stride: (stride, stride), padding: (padding, padding))
        winograd = algorithm == .winograd ? WinogradWeights(convWeight: weight) : nil
        direct = algorithm == .direct ? DirectConvWeights(convWeight: weight, stride: stride) : nil
        packed = BLAS.backend == .engine && winograd == nil && direct == nil ? PackedWeights(convWeight: weight) : nil
    }

    /// x: [N, Cin, H, W] → [N, Cout, Ho, Wo]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let winograd { return conv2dWinograd(x, weights: winograd, bias: bias, padding: padding) }
        if let direct { return conv2dDirect(x, weights: direct, bias: bias, padding: (padding, padding)) }
        return conv2d(x, weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding), packed: packed)
    }

    /// Folds an inference BatchNorm2d stored under `bn` (weight, bias, running_mean, running_var;
    /// num_batches_tracked is ignored) into this convolution.
    public func foldingBatchNorm(_ bn: WeightScope, eps: Float = 1e-5) throws -> Conv2d {
        let c = [weight.shape[0]]
        let folded = foldBatchNorm(
            weight: weight, bias: bias,
            gamma: try bn.tensor("weight", shape: c), beta: try bn.tensor("bias", shape: c),
            runningMean: try bn.tensor("running_mean", shape: c),
            runningVar: try bn.tensor("running_var", shape: c), eps: eps)
        bn.store.ignore { $0 == bn.key("num_batches_tracked") }
        return Conv2d(weight: folded.weight, bias: folded.bias, stride: stride, padding: padding)
    }
}

/// nn.GroupNorm over [N, C, *].
public struct GroupNorm: Sendable {
    public let groups: Int
    public let eps: Float
    public let weight: Tensor?
    public let bias: Tensor?

    public init(_ w: WeightScope, groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) throws {
        precondition(channels % groups == 0, "GroupNorm: \(channels) channels not divisible by \(groups) groups")
        self.groups = groups
        self.eps = eps
        weight = affine ? try w.tensor("weight", shape: [channels]) : nil
        bias = affine ? try w.tensor("bias", shape: [channels]) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// nn.LayerNorm over the last dimension.
public struct LayerNorm: Sendable {
    public let eps: Float
    public let weight: Tensor?
    public let bias: Tensor?

    public init(_ w: WeightScope, dim: Int, eps: Float = 1e-5, affine: Bool = true) throws {
        self.eps = eps
        weight = affine ? try w.tensor("weight", shape: [dim]) : nil
        bias = affine ? try w.tensor("bias", shape: [dim]) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}

/// nn.Embedding. weight [V, D].
public struct Embedding: Sendable {
    public let weight: Tensor

    public init(_ w: WeightScope, count: Int, dim: Int) throws {
        weight = try w.tensor("weight", shape: [count, dim])
    }

    public var count: Int { weight.shape[0] }
    public var dim: Int { weight.shape[1] }

    /// ids → [ids.count, D]
    public func callAsFunction(_ ids: [Int]) -> Tensor { embedding(ids, table: weight) }
}
