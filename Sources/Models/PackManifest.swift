// pack.json: what a model pack holds and how to run it (classes and caption synonyms, the size the
// purifier works at, default purification and captioning parameters, licences).
import Foundation

public struct PackManifest: Codable, Sendable {
    public struct Purification: Codable, Sendable {
        public var strength: Double
        public var steps: Int
        public var guidance: Double
        public var eta: Double?
        public var ensemble: Int?
    }

    public struct Captioning: Codable, Sendable {
        public var numBeams: Int?
        public var minLength: Int?
        public var maxLength: Int?
        public var prompt: String?
        /// How the captioner's input reaches its size: absent, the BLIP processor's own PIL resize of
        /// the 8-bit image (transformers' BlipProcessor); "bilinear" or "bicubic", torch interpolate
        /// of the float image (the LGAP reference code's torchvision Resize on tensors).
        public var resize: String?

        enum CodingKeys: String, CodingKey {
            case prompt, resize
            case numBeams = "num_beams", minLength = "min_length", maxLength = "max_length"
        }
    }

    public var name: String
    public var version: String
    public var description: String?
    public var classes: [String]
    /// Words that name each class in captions (the consistency flag reads these).
    public var synonyms: [String: [String]]
    /// [height, width] the purifier works at; images of another size are resized there and back.
    public var imageSize: [Int]?
    /// How images are resized to and from imageSize: "bicubic" or "bilinear" (torch interpolate).
    public var resize: String?
    /// Where the start noise goes: "diffusers" (img2img's first denoising timestep, the default) or
    /// "compvis" (one DDIM stride above it, as CompVis' stochastic_encode; see NoiseSchedule).
    public var noiseSchedule: String?
    /// Where the classifier's own resize (classifier/config.json "resize") applies: "after_purification"
    /// (the default: the purified image at the input's size is resized for the classifier) or
    /// "before_purification" (the input is brought to the classifier's size first, then captioned,
    /// purified and classified with no further resize: the ImageNet protocol of resize 256 + crop 224).
    public var classifierResize: String?
    /// SHA-256 of the pack's files by relative path (written by tools/packs/build_pack.py; checked by
    /// `lgapctl pack verify`).
    public var files: [String: String]?
    public var purification: Purification
    public var captioning: Captioning?
    public var licenses: [String: String]?

    enum CodingKeys: String, CodingKey {
        case name, version, description, classes, synonyms, resize, purification, captioning, licenses, files
        case imageSize = "image_size", noiseSchedule = "noise_schedule", classifierResize = "classifier_resize"
    }

    public var noise: NoiseSchedule { noiseSchedule.flatMap(NoiseSchedule.init(rawValue:)) ?? .diffusers }
    public var resizesBeforePurification: Bool { classifierResize == "before_purification" }

    public static func load(folder: String) throws -> PackManifest {
        let path = folder + "/pack.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        let m: PackManifest
        do { m = try JSONDecoder().decode(PackManifest.self, from: data) } catch { throw ModelError.badConfig(path, describe(error)) }
        guard !m.classes.isEmpty else { throw ModelError.badConfig(path, "classes is empty") }
        for c in m.synonyms.keys where !m.classes.contains(c) { throw ModelError.badConfig(path, "synonyms for unknown class '\(c)'") }
        if let s = m.imageSize, s.count != 2 || s.contains(where: { $0 <= 0 }) { throw ModelError.badConfig(path, "image_size must be [height, width]") }
        if let r = m.resize, !["bicubic", "bilinear"].contains(r) { throw ModelError.badConfig(path, "resize must be bicubic or bilinear, got '\(r)'") }
        if let r = m.captioning?.resize, !["bicubic", "bilinear"].contains(r) {
            throw ModelError.badConfig(path, "captioning.resize must be bicubic or bilinear (or absent: the processor's own resize), got '\(r)'")
        }
        if let n = m.noiseSchedule, NoiseSchedule(rawValue: n) == nil {
            throw ModelError.badConfig(path, "noise_schedule must be diffusers or compvis, got '\(n)'")
        }
        if let c = m.classifierResize, !["after_purification", "before_purification"].contains(c) {
            throw ModelError.badConfig(path, "classifier_resize must be after_purification or before_purification, got '\(c)'")
        }
        return m
    }
}
