// Concat, split, narrow, permute: copies between layouts.

/// Joins tensors along `axis`; all other dimensions must agree.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concat of no tensors")
    let first = tensors[0]
    let ax = first.normalizedAxis(axis)
    for t in tensors {
        precondition(t.rank == first.rank, "concat rank mismatch: \(t.shape) vs \(first.shape)")
        for d in 0..<t.rank where d != ax {
            precondition(t.shape[d] == first.shape[d], "concat along \(ax): \(t.shape) vs \(first.shape)")
        }
    }
    var shape = first.shape
    shape[ax] = tensors.reduce(0) { $0 + $1.shape[ax] }
    let outer = shape[..<ax].reduce(1, *)
    let inner = shape[(ax + 1)...].reduce(1, *)
    let out = Tensor(uninitialized: shape)
    out.withFreshData { op in
        var offset = 0
        for t in tensors {
            let chunk = t.shape[ax] * inner
            t.withData { tp in
                for o in 0..<outer {
                    (op + o * shape[ax] * inner + offset).update(from: tp + o * chunk, count: chunk)
                }
            }
            offset += chunk
        }
    }
    return out
}

/// Elements [start, start+length) along `axis`.
public func narrow(_ x: Tensor, axis: Int, start: Int, length: Int) -> Tensor {
    let ax = x.normalizedAxis(axis)
    precondition(
        start >= 0 && length >= 0 && start + length <= x.shape[ax],
        "narrow [\(start), \(start + length)) out of range for axis \(ax) of \(x.shape)")
    var shape = x.shape
    shape[ax] = length
    let outer = x.shape[..<ax].reduce(1, *)
    let inner = x.shape[(ax + 1)...].reduce(1, *)
    let out = Tensor(uninitialized: shape)
    x.withData { xp in
        out.withFreshData { op in
            for o in 0..<outer {
                (op + o * length * inner).update(from: xp + (o * x.shape[ax] + start) * inner, count: length * inner)
            }
        }
    }
    return out
}

/// Splits along `axis` into pieces of the given sizes (which must sum to the dimension).
public func split(_ x: Tensor, sizes: [Int], axis: Int) -> [Tensor] {
    let ax = x.normalizedAxis(axis)
    precondition(sizes.reduce(0, +) == x.shape[ax], "split sizes \(sizes) do not sum to \(x.shape[ax])")
    var start = 0
    return sizes.map { size in
        defer { start += size }
        return narrow(x, axis: ax, start: start, length: size)
    }
}

/// Splits into `parts` equal pieces along `axis` (torch.chunk with an exact division).
public func chunk(_ x: Tensor, parts: Int, axis: Int) -> [Tensor] {
    let d = x.dim(axis)
    precondition(parts > 0 && d % parts == 0, "chunk: \(d) does not split into \(parts)")
    return split(x, sizes: Array(repeating: d / parts, count: parts), axis: axis)
}

/// Reorders dimensions: out.shape[i] = x.shape[dims[i]] (torch.permute), materialised contiguously.
public func permute(_ x: Tensor, _ dims: [Int]) -> Tensor {
    precondition(dims.count == x.rank && Set(dims) == Set(0..<x.rank), "permute \(dims) for shape \(x.shape)")
    let shape = dims.map { x.shape[$0] }
    var inStrides = [Int](repeating: 1, count: x.rank)
    for i in stride(from: x.rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * x.shape[i + 1] }
    let strides = dims.map { inStrides[$0] }
    let out = Tensor(uninitialized: shape)
    let r = shape.count
    if r == 0 { return x.copy() }
    x.withData { xp in
        out.withFreshData { op in
            let inner = shape[r - 1], innerStride = strides[r - 1]
            let runs = out.count / max(inner, 1)
            var index = [Int](repeating: 0, count: r)
            var src = 0
            for run in 0..<runs {
                let dst = op + run * inner
                if innerStride == 1 {
                    dst.update(from: xp + src, count: inner)
                } else {
                    for j in 0..<inner { dst[j] = xp[src + j * innerStride] }
                }
                var d = r - 2
                while d >= 0 {
                    index[d] += 1
                    src += strides[d]
                    if index[d] < shape[d] { break }
                    src -= strides[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
    return out
}

/// Swaps the last two dimensions.
public func transposeLast2(_ x: Tensor) -> Tensor {
    var dims = Array(0..<x.rank)
    dims.swapAt(x.rank - 1, x.rank - 2)
    return permute(x, dims)
}
