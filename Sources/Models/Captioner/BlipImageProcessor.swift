// Port of transformers BlipImageProcessor (image_processing_blip.py): preprocessor_config.json →
// resize with PIL to size {height, width} (8-bit, PILResample), rescale (uint8 · factor in float64,
// then float32, as transformers' rescale), normalise ((x − mean) / std in float32), channels first.
import Foundation
import ImageIO
import Tensor

public struct BlipImageProcessor: Sendable {
    /// preprocessor_config.json, with BlipImageProcessor's defaults for absent keys.
    public struct Config: Codable, Sendable, Equatable {
        public var doResize = true
        public var height = 384
        public var width = 384
        /// PIL resampling code: 1 lanczos, 2 bilinear, 3 bicubic (BLIP's default).
        public var resample = 3
        public var doRescale = true
        public var rescaleFactor = 1.0 / 255.0
        public var doNormalize = true
        public var imageMean: [Float] = [0.48145466, 0.4578275, 0.40821073]  // OPENAI_CLIP_MEAN
        public var imageStd: [Float] = [0.26862954, 0.26130258, 0.27577711]  // OPENAI_CLIP_STD
        /// Our images are always 8-bit RGB already, so this is a no-op kept for completeness.
        public var doConvertRGB = true

        enum CodingKeys: String, CodingKey {
            case doResize = "do_resize", size, resample, doRescale = "do_rescale", rescaleFactor = "rescale_factor"
            case doNormalize = "do_normalize", imageMean = "image_mean", imageStd = "image_std"
            case doConvertRGB = "do_convert_rgb"
        }

        /// `size` is {"height", "width"} or one int (a square), as get_size_dict accepts for BLIP.
        struct Size: Codable {
            var height: Int
            var width: Int
        }

        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Config()
            doResize = try c.value(.doResize, default: d.doResize)
            if let side = try? c.decode(Int.self, forKey: .size) {
                height = side; width = side
            } else if let size = try c.decodeIfPresent(Size.self, forKey: .size) {
                height = size.height; width = size.width
            }
            resample = try c.value(.resample, default: d.resample)
            doRescale = try c.value(.doRescale, default: d.doRescale)
            rescaleFactor = try c.value(.rescaleFactor, default: d.rescaleFactor)
            doNormalize = try c.value(.doNormalize, default: d.doNormalize)
            imageMean = try Self.perChannel(c, .imageMean) ?? d.imageMean
            imageStd = try Self.perChannel(c, .imageStd) ?? d.imageStd
            doConvertRGB = try c.value(.doConvertRGB, default: d.doConvertRGB)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(doResize, forKey: .doResize)
            try c.encode(Size(height: height, width: width), forKey: .size)
            try c.encode(resample, forKey: .resample)
            try c.encode(doRescale, forKey: .doRescale)
            try c.encode(rescaleFactor, forKey: .rescaleFactor)
            try c.encode(doNormalize, forKey: .doNormalize)
            try c.encode(imageMean, forKey: .imageMean)
            try c.encode(imageStd, forKey: .imageStd)
            try c.encode(doConvertRGB, forKey: .doConvertRGB)
        }

        /// A list of 3 values or one value for all channels.
        private static func perChannel(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> [Float]? {
            if let one = try? c.decode(Float.self, forKey: key) { return [one, one, one] }
            return try c.decodeIfPresent([Float].self, forKey: key)
        }
    }

    public let config: Config
    let filter: PILFilter
    /// When set, do_resize interpolates the float image (u8 / 255) with torch's interpolate
    /// (align_corners False, no antialias) in this mode instead of PIL-resizing the 8-bit image, then
    /// normalises: the LGAP reference code's torchvision Resize + Normalize on tensors.
    public var tensorResize: InterpolationMode?

    public init(config: Config, path: String = "preprocessor_config.json") throws {
        func bad(_ m: String) -> ModelError { .badConfig(path, m) }
        switch config.resample {
        case 1: filter = .lanczos
        case 2: filter = .bilinear
        case 3: filter = .bicubic
        default: throw bad("resample \(config.resample) is not supported (1 lanczos, 2 bilinear, 3 bicubic)")
        }
        guard config.height > 0, config.width > 0 else { throw bad("size must be positive, got \(config.height)×\(config.width)") }
        guard config.imageMean.count == 3, config.imageStd.count == 3, config.imageStd.allSatisfy({ $0 != 0 }) else {
            throw bad("image_mean and image_std need 3 values (std non-zero)")
        }
        self.config = config
    }

    /// Reads `folder/preprocessor_config.json`.
    public init(folder: String) throws {
        let path = (folder as NSString).appendingPathComponent("preprocessor_config.json")
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        let config: Config
        do {
            config = try JSONDecoder().decode(Config.self, from: data)
        } catch {
            throw ModelError.badConfig(path, describe(error))
        }
        try self.init(config: config, path: path)
    }

    /// images → pixel_values [N, 3, H, W]. Without resizing all images must share one size.
    public func pixelValues(_ images: [RGBImage]) throws -> Tensor {
        guard let first = images.first else { throw ModelError.badInput("no images to preprocess") }
        let h = config.doResize ? config.height : first.height
        let w = config.doResize ? config.width : first.width
        let plane = h * w
        let out = Tensor(uninitialized: [images.count, 3, h, w])
        // Per channel: value = ((u8 · factor) − mean) / std, each step rounded as numpy does.
        let mean = config.doNormalize ? config.imageMean : [0, 0, 0]
        let std = config.doNormalize ? config.imageStd : [1, 1, 1]
        let factor = config.doRescale ? config.rescaleFactor : 1
        if config.doResize, let mode = tensorResize {
            return tensorResized(images, height: h, width: w, mode: mode, mean: mean, std: std)
        }
        for (n, image) in images.enumerated() {
            let resized = config.doResize ? PILResample.resize(image, width: w, height: h, filter: filter) : image
            guard resized.width == w, resized.height == h else {
                throw ModelError.badInput("image \(n) is \(image.width)×\(image.height); without do_resize all images must be \(w)×\(h)")
            }
            out.withFreshData { p in
                resized.pixels.withUnsafeBufferPointer { src in
                    for c in 0..<3 {
                        let dst = p + (n * 3 + c) * plane
                        for i in 0..<plane {
                            let x = Float(Double(src[i * 3 + c]) * factor)
                            dst[i] = config.doNormalize ? (x - mean[c]) / std[c] : x
                        }
                    }
                }
            }
        }
        return out
    }

    /// The tensorResize path: ToTensor (u8 / 255 in float32), interpolate, (x − mean) / std.
    private func tensorResized(_ images: [RGBImage], height h: Int, width w: Int, mode: InterpolationMode, mean: [Float], std: [Float]) -> Tensor {
        let resized = images.map { image -> Tensor in
            let x = image.tensor()  // [1, 3, H, W]
            return (image.height, image.width) == (h, w) ? x : interpolate(x, height: h, width: w, mode: mode)
        }
        let x = resized.count == 1 ? resized[0] : concat(resized, axis: 0)
        let plane = h * w
        let out = Tensor(uninitialized: x.shape)
        x.withData { src in
            out.withFreshData { dst in
                for n in 0..<images.count {
                    for c in 0..<3 {
                        let o = (n * 3 + c) * plane
                        for i in 0..<plane { dst[o + i] = (src[o + i] - mean[c]) / std[c] }
                    }
                }
            }
        }
        return out
    }
}
