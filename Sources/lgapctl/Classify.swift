// lgapctl classify: the bare classifier over files and folders (the undefended baseline).
import ArgumentParser
import Foundation
import ImageIO
import Locations
import Models
import Tensor

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images with the pack's classifier alone (no purification).")

    @Option(help: "Pack folder (default: models/cifar10-mini).")
    var pack: String?

    @Option(help: "Images per forward pass.")
    var batch: Int = 32

    @Option(name: .customLong("top-k"), help: "Classes listed per image.")
    var topK: Int = 5

    @Flag(help: "One JSON object per line instead of a table.")
    var json = false

    @Argument(help: "Image files or folders (walked recursively).")
    var paths: [String]

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard topK >= 1 else { throw ValidationError("--top-k must be at least 1") }
    }

    func run() throws {
        let packDir = pack ?? Locations.pack
        let classifier: ImageClassifier
        do {
            classifier = try ImageClassifier(folder: (packDir as NSString).appendingPathComponent("classifier"))
        } catch {
            throw ValidationError("cannot load the classifier of \(packDir): \(error)")
        }
        let files = InputFiles.expand(paths)
        let progress = ProgressLine(total: files.count)
        if !json { print("file\tlabel\tconfidence") }
        var done = 0, failures = 0
        for start in stride(from: 0, to: files.count, by: batch) {
            let group = Array(files[start..<min(files.count, start + batch)])
            var images: [(String, RGBImage)] = []
            for f in group {
                do {
                    images.append((f, try ImageCodec.decode(contentsOf: f)))
                } catch {
                    failures += 1
                    report(file: f, error: "\(error)")
                }
            }
            if !images.isEmpty {
                let predictions = classifier.classify(images.map(\.1), topK: topK)
                for ((f, _), p) in zip(images, predictions) { report(file: f, prediction: p) }
            }
            done += group.count
            progress.update(done)
        }
        if failures > 0 { Output.stderr("\(failures) of \(files.count) file(s) could not be classified") }
    }

    func report(file: String, prediction p: Prediction) {
        if json {
            Output.jsonLine([
                "file": file, "label": p.label, "label_index": p.labelIndex, "confidence": Double(p.confidence),
                "top_k": p.topK.map { ["index": $0.index, "label": $0.label, "probability": Double($0.probability)] }
            ])
        } else {
            print("\(file)\t\(p.label)\t\(String(format: "%.4f", p.confidence))")
        }
    }

    func report(file: String, error: String) {
        if json {
            Output.jsonLine(["file": file, "error": error])
        } else {
            print("\(file)\terror: \(error)")
        }
    }
}
