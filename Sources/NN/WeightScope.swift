// Scoped access to checkpoint weights, after candle's VarBuilder: model constructors take a scope
// (`w.scope("down_blocks.0.resnets.1")`) so the tree of constructor calls is the checkpoint's key
// tree. Every fetch checks the shape; the store remembers what was used so a loader can insist that
// nothing in the file was left over.
import Foundation
import Tensor

public enum WeightError: Error, CustomStringConvertible, Equatable {
    case missing(key: String, source: String)
    case shapeMismatch(key: String, expected: [Int], actual: [Int])
    case unused(keys: [String], source: String)
    case badFolder(path: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let key, let source): return "\(source): missing weight '\(key)'"
        case .shapeMismatch(let key, let expected, let actual): return "weight '\(key)' has shape \(actual), expected \(expected)"
        case .unused(let keys, let source):
            let shown = keys.prefix(8).joined(separator: ", ")
            return "\(source): \(keys.count) weight(s) not used by the model: \(shown)\(keys.count > 8 ? ", …" : "")"
        case .badFolder(let path, let reason): return "\(path): \(reason)"
        }
    }
}

/// The tensors of one or more safetensors files, with a record of which keys were read.
public final class WeightStore: @unchecked Sendable {
    public let files: [SafeTensorsFile]
    private var owner: [String: SafeTensorsFile] = [:]
    /// Keys renamed by `renameKeys`: the model's name → the name in the file.
    private var storedName: [String: String] = [:]
    private var used = Set<String>()
    private let lock = NSLock()
    public let source: String

    public init(files: [SafeTensorsFile]) {
        self.files = files
        for f in files { for name in f.tensors.keys { owner[name] = f } }
        source = files.map(\.path).joined(separator: ", ")
    }

    public convenience init(path: String) throws {
        try self.init(files: [SafeTensorsFile(path: path)])
    }

    /// Opens `model.safetensors` (or `diffusion_pytorch_model.safetensors`, or the shards listed in
    /// a `*.safetensors.index.json`) in a Hugging Face model folder.
    public convenience init(folder: String) throws {
        let fm = FileManager.default
        for single in ["model.safetensors", "diffusion_pytorch_model.safetensors"] {
            let p = (folder as NSString).appendingPathComponent(single)
            if fm.fileExists(atPath: p) { try self.init(path: p); return }
        }
        let entries = (try? fm.contentsOfDirectory(atPath: folder)) ?? []
        if let index = entries.first(where: { $0.hasSuffix(".safetensors.index.json") }) {
            let p = (folder as NSString).appendingPathComponent(index)
            guard let data = fm.contents(atPath: p),
                let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let map = json["weight_map"] as? [String: String]
            else {
                throw WeightError.badFolder(path: p, reason: "unreadable shard index")
            }
            let shards = Set(map.values).sorted().map { (folder as NSString).appendingPathComponent($0) }
            try self.init(files: shards.map { try SafeTensorsFile(path: $0) })
            return
        }
        throw WeightError.badFolder(
            path: folder,
            reason: "no model.safetensors, diffusion_pytorch_model.safetensors or shard index (PyTorch .bin checkpoints must be converted to safetensors first)"
        )
    }

    public var keys: [String] { owner.keys.sorted() }

    public func contains(_ key: String) -> Bool { owner[key] != nil }

    public func shape(_ key: String) -> [Int]? { owner[key]?.tensors[storedName[key] ?? key]?.shape }

    public func tensor(_ key: String, shape: [Int]?) throws -> Tensor {
        let stored = storedName[key] ?? key
        guard let file = owner[key], let info = file.tensors[stored] else { throw WeightError.missing(key: key, source: source) }
        if let shape, shape != info.shape { throw WeightError.shapeMismatch(key: key, expected: shape, actual: info.shape) }
        lock.lock(); used.insert(key); lock.unlock()
        return try file.tensor(stored)
    }

    /// Gives stored keys the names the model asks for, where `rename` returns one (a checkpoint
    /// written under a library's older names); a renamed key is read, shape-checked and counted as
    /// used under its new name. Refuses a rename onto a key the file already has.
    public func renameKeys(_ rename: (String) -> String?) throws {
        lock.lock(); defer { lock.unlock() }
        for key in owner.keys.sorted() {
            guard let new = rename(key), new != key, let file = owner[key] else { continue }
            guard owner[new] == nil else {
                throw WeightError.badFolder(path: source, reason: "holds both '\(key)' and its current name '\(new)'")
            }
            owner[new] = file
            owner[key] = nil
            storedName[new] = storedName[key] ?? key
        }
    }

    /// Marks keys as deliberately ignored (e.g. BatchNorm's num_batches_tracked counters).
    public func ignore(where predicate: (String) -> Bool) {
        lock.lock(); defer { lock.unlock() }
        for k in owner.keys where predicate(k) { used.insert(k) }
    }

    public var unusedKeys: [String] {
        lock.lock(); defer { lock.unlock() }
        return owner.keys.filter { !used.contains($0) }.sorted()
    }

    /// Throws when any stored tensor was never read: a model that silently skips weights is wrong.
    public func checkAllUsed() throws {
        let left = unusedKeys
        if !left.isEmpty { throw WeightError.unused(keys: left, source: source) }
    }

    /// Number of float parameters in the store.
    public var parameterCount: Int {
        files.reduce(0) { acc, f in acc + f.tensors.values.reduce(0) { $0 + $1.shape.reduce(1, *) } }
    }
}

/// A key prefix into a `WeightStore`: `scope("a").scope("b").tensor("weight")` reads "a.b.weight".
public struct WeightScope: @unchecked Sendable {
    public let store: WeightStore
    public let prefix: String

    public init(_ store: WeightStore, prefix: String = "") {
        self.store = store
        self.prefix = prefix
    }

    public func scope(_ name: String) -> WeightScope {
        WeightScope(store, prefix: key(name))
    }

    public func scope(_ index: Int) -> WeightScope { scope(String(index)) }

    public func key(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }

    /// The tensor `prefix.name`, which must have `shape` (nil: any shape).
    public func tensor(_ name: String, shape: [Int]?) throws -> Tensor {
        try store.tensor(key(name), shape: shape)
    }

    public func optionalTensor(_ name: String, shape: [Int]?) throws -> Tensor? {
        store.contains(key(name)) ? try tensor(name, shape: shape) : nil
    }

    public func contains(_ name: String) -> Bool { store.contains(key(name)) }

    public func shape(_ name: String) -> [Int]? { store.shape(key(name)) }
}
