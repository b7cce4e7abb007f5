// A classifier folder (config.json + model.safetensors) loaded into one of the ported networks,
// with the preprocessing its reference uses and softmax predictions.
import Foundation
import ImageIO
import NN
import Tensor

/// A network mapping normalised images [N, 3, H, W] to logits [N, classes].
public protocol ClassifierNetwork: Sendable {
    func callAsFunction(_ x: Tensor) -> Tensor
}

public struct RankedClass: Codable, Sendable, Equatable {
    public let index: Int
    public let label: String
    public let probability: Float

    public init(index: Int, label: String, probability: Float) {
        self.index = index
        self.label = label
        self.probability = probability
    }
}

public struct Prediction: Codable, Sendable, Equatable {
    public let labelIndex: Int
    public let label: String
    public let confidence: Float
    public let topK: [RankedClass]

    enum CodingKeys: String, CodingKey {
        case label, confidence
        case labelIndex = "label_index"
        case topK = "top_k"
    }
}

public final class ImageClassifier: Sendable {
    public let config: ClassifierConfig
    public let folder: String
    public let parameterCount: Int
    let network: any ClassifierNetwork

    /// Loads `folder`; every tensor in the checkpoint must be used by the network.
    public init(folder: String) throws {
        self.folder = folder
        config = try ClassifierConfig.load(folder: folder)
        let store = try WeightStore(folder: folder)
        let w = WeightScope(store)
        switch config.architecture {
        case .cifarResNet: network = try CIFARResNet(w, config: config)
        case .wideResNet: network = try WideResNet(w, config: config)
        case .torchvisionResNet: network = try TorchvisionResNet(w, config: config)
        }
        try store.checkAllUsed()
        parameterCount = store.parameterCount
    }

    public var classNames: [String] { config.classNames }
    public var weightsPath: String { (folder as NSString).appendingPathComponent("model.safetensors") }

    /// The image at the network's input size, as its reference preprocessing would produce it (8-bit).
    public func resized(_ image: RGBImage) -> RGBImage {
        let (h, w) = (config.inputSize[0], config.inputSize[1])
        let filter = PILFilter(rawValue: config.resize.filter ?? "bilinear") ?? .bilinear
        switch config.resize.policy {
        case "resize_center_crop":
            // torchvision Resize(int): the shorter side becomes resize_to, the other keeps the aspect
            // ratio (truncated); CenterCrop rounds the offsets half to even, as Python's round().
            let size = config.resize.resizeTo ?? max(h, w)
            let (rw, rh) =
                image.width <= image.height
                ? (size, Int(Double(size) * Double(image.height) / Double(image.width)))
                : (Int(Double(size) * Double(image.width) / Double(image.height)), size)
            let r = (rw, rh) == (image.width, image.height) ? image : PILResample.resize(image, width: rw, height: rh, filter: filter)
            return centerCrop(r, width: w, height: h)
        default:
            if image.width == w && image.height == h { return image }
            return PILResample.resize(image, width: w, height: h, filter: filter)
        }
    }

    /// The image at the input size by a plain resize (no crop), unchanged when it has that size.
    func fitted(_ image: RGBImage) -> RGBImage {
        let (h, w) = (config.inputSize[0], config.inputSize[1])
        if image.width == w && image.height == h { return image }
        return PILResample.resize(image, width: w, height: h, filter: PILFilter(rawValue: config.resize.filter ?? "bilinear") ?? .bilinear)
    }

    /// Normalised input tensor [N, 3, H, W] for a batch of images. `resize` false: the images were
    /// brought to the input size by `resized` already (pack.json classifier_resize
    /// before_purification), so only a plain resize to the input size remains, applied only if a
    /// size differs.
    public func preprocess(_ images: [RGBImage], resize: Bool = true) -> Tensor {
        let (h, w) = (config.inputSize[0], config.inputSize[1])
        let out = Tensor(uninitialized: [images.count, 3, h, w])
        let plane = h * w
        out.withFreshData { p in
            for (n, image) in images.enumerated() {
                let img = resize ? resized(image) : fitted(image)
                img.pixels.withUnsafeBufferPointer { px in
                    for c in 0..<3 {
                        let dst = p + (n * 3 + c) * plane
                        // (x/255 − mean)/std, the same arithmetic as ToTensor + Normalize up to rounding.
                        for i in 0..<plane { dst[i] = (Float(px[i * 3 + c]) / 255 - config.mean[c]) / config.std[c] }
                    }
                }
            }
        }
        return out
    }

    /// Logits [N, classes].
    public func logits(_ images: [RGBImage]) -> Tensor { network(preprocess(images)) }

    /// Logits for an already preprocessed batch.
    public func logits(preprocessed x: Tensor) -> Tensor { network(x) }

    public func classify(_ images: [RGBImage], topK: Int = 5) -> [Prediction] {
        predictions(fromLogits: logits(images), topK: topK)
    }

    public func predictions(fromLogits logits: Tensor, topK: Int = 5) -> [Prediction] {
        let probs = softmax(logits).scalars
        let k = config.numClasses
        return (0..<logits.shape[0]).map { n in
            let row = Array(probs[(n * k)..<((n + 1) * k)])
            let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
            let top = order.prefix(min(topK, k)).map { RankedClass(index: $0, label: config.classNames[$0], probability: row[$0]) }
            return Prediction(labelIndex: order[0], label: config.classNames[order[0]], confidence: row[order[0]], topK: top)
        }
    }
}

func centerCrop(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
    let top = Int((Double(image.height - height) / 2).rounded(.toNearestOrEven))
    let left = Int((Double(image.width - width) / 2).rounded(.toNearestOrEven))
    var px = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        let sy = y + top
        guard sy >= 0 && sy < image.height else { continue }
        for x in 0..<width {
            let sx = x + left
            guard sx >= 0 && sx < image.width else { continue }
            for c in 0..<3 { px[(y * width + x) * 3 + c] = image.pixels[(sy * image.width + sx) * 3 + c] }
        }
    }
    return RGBImage(width: width, height: height, pixels: px)
}
