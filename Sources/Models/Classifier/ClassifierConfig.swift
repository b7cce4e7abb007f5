// classifier/config.json: architecture, hyper-parameters, classes and preprocessing.
// Written by tools/convert/classifier.py; unknown architectures and missing fields are load errors.
import Foundation

public struct ClassifierConfig: Codable, Sendable, Equatable {
    public enum Architecture: String, Codable, Sendable {
        case cifarResNet = "cifar_resnet"
        case wideResNet = "wide_resnet"
        case torchvisionResNet = "torchvision_resnet"
    }

    /// How an input image reaches `inputSize`.
    public struct Resize: Codable, Sendable, Equatable {
        /// "resize": PIL-resize to input_size when the size differs; "resize_center_crop": PIL-resize the
        /// shorter side to `resize_to`, then crop the centre (torchvision's Resize + CenterCrop).
        public var policy: String
        public var filter: String?
        public var resizeTo: Int?

        enum CodingKeys: String, CodingKey {
            case policy, filter
            case resizeTo = "resize_to"
        }
    }

    public var architecture: Architecture
    public var depth: Int
    public var widenFactor: Int?
    public var widths: [Int]?
    /// torchvision_resnet: blocks per stage and bottleneck width per group (torchvision's ResNet
    /// arguments); default to the standard values for `depth`.
    public var layers: [Int]?
    public var widthPerGroup: Int?
    public var numClasses: Int
    public var classNames: [String]
    public var inputSize: [Int]
    public var resize: Resize
    public var mean: [Float]
    public var std: [Float]
    public var source: String?

    enum CodingKeys: String, CodingKey {
        case architecture, depth, widths, resize, mean, std, source
        case layers
        case widenFactor = "widen_factor"
        case widthPerGroup = "width_per_group"
        case numClasses = "num_classes"
        case classNames = "class_names"
        case inputSize = "input_size"
    }

    public static func load(folder: String) throws -> ClassifierConfig {
        let path = (folder as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.missingFile(path)
        }
        let config: ClassifierConfig
        do {
            config = try JSONDecoder().decode(ClassifierConfig.self, from: data)
        } catch let DecodingError.dataCorrupted(ctx) where ctx.codingPath.last?.stringValue == "architecture" {
            throw ModelError.badConfig(path, "unknown architecture (expected cifar_resnet, wide_resnet or torchvision_resnet)")
        } catch {
            throw ModelError.badConfig(path, describe(error))
        }
        try config.validate(path: path)
        return config
    }

    func validate(path: String) throws {
        func bad(_ m: String) -> ModelError { .badConfig(path, m) }
        guard classNames.count == numClasses else { throw bad("class_names has \(classNames.count) entries, num_classes is \(numClasses)") }
        guard inputSize.count == 2, inputSize.allSatisfy({ $0 > 0 }) else { throw bad("input_size must be [height, width]") }
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 }) else { throw bad("mean and std need 3 values (std > 0)") }
        guard ["resize", "resize_center_crop"].contains(resize.policy) else { throw bad("unknown resize policy '\(resize.policy)'") }
        if let f = resize.filter, !["bilinear", "bicubic", "lanczos"].contains(f) { throw bad("unknown resize filter '\(f)'") }
        if resize.policy == "resize_center_crop" && (resize.resizeTo ?? 0) <= 0 { throw bad("resize_center_crop needs resize_to") }
        switch architecture {
        case .cifarResNet: guard (depth - 2) % 6 == 0 else { throw bad("cifar_resnet depth must be 6n+2, got \(depth)") }
        case .wideResNet:
            guard (depth - 4) % 6 == 0 else { throw bad("wide_resnet depth must be 6n+4, got \(depth)") }
            guard (widenFactor ?? 0) > 0 else { throw bad("wide_resnet needs widen_factor") }
        case .torchvisionResNet: guard [18, 34, 50, 101, 152].contains(depth) else { throw bad("torchvision_resnet depth \(depth) unsupported") }
        }
    }
}

/// Readable text for a DecodingError (names the field).
func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, let ctx):
        return "missing field '\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
    case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
        return "bad value for '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))': \(ctx.debugDescription)"
    case DecodingError.dataCorrupted(let ctx):
        return "invalid JSON at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))': \(ctx.debugDescription)"
    default:
        return "\(error)"
    }
}
