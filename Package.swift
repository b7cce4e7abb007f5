// swift-tools-version: 6.1
// lgap — Language-Guided Adversarial Purification as a service. The target graph mirrors the
// architecture: C libraries enter through one target each; Tensor → NN → Models; the daemon and CLI
// sit on top. See README.md for the picture.
import PackageDescription

// Release builds stay portable (baseline x86-64 for Swift code); the hot loops in CKernels carry
// AVX-512/AVX2 clones chosen at load time, and GEMMs run in OpenBLAS, which dispatches by CPU itself.
let optimize: [CSetting] = [.unsafeFlags(["-O3"], .when(configuration: .release))]

let package = Package(
    name: "lgap",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lgapd", targets: ["lgapd"]),
        .executable(name: "lgapctl", targets: ["lgapctl"]),
        .executable(name: "lgap-bench", targets: ["lgap-bench"]),
        .library(name: "LGAPFuzzSupport", targets: ["LGAPFuzzSupport"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0")
    ],
    targets: [
        // C libraries: system targets are a module map and a shim header each.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CCrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(
            name: "CImageIO", cSettings: optimize,
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),
        .target(name: "CKernels", cSettings: optimize),
        .target(name: "CCrashJournal"),

        // The engine.
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "NN", dependencies: ["Tensor"]),
        .target(name: "ImageIO", dependencies: ["CImageIO", "Tensor"]),
        .target(name: "Digest", dependencies: ["CCrypto"]),
        .target(name: "Models", dependencies: ["Tensor", "NN", "ImageIO", "Digest"]),

        // The service: the typed job, its processing, the wire, the store, the daemon's parts.
        .target(name: "Locations"),
        .target(name: "BuildInfo", plugins: ["GitDescribe"]),
        .plugin(name: "GitDescribe", capability: .buildTool()),
        .target(name: "JobModel", dependencies: ["Models", "ImageIO"]),
        .target(name: "JobProcessing", dependencies: ["JobModel", "Models", "ImageIO", "Tensor", "Digest"]),
        .target(name: "Pipeline"),
        .target(name: "Messaging", dependencies: ["CZeroMQ", "JobModel", "ImageIO"]),
        .target(name: "Provenance", dependencies: ["JobModel", "Models", "CPostgres", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(
            name: "Service",
            dependencies: [
                "JobModel", "JobProcessing", "Pipeline", "Messaging", "Provenance", "Models", "ImageIO", "Tensor", "Digest", "Locations",
                "BuildInfo", "CCrashJournal",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio")
            ]),
        .target(name: "LGAPFuzzSupport", dependencies: ["ImageIO", "Messaging"]),

        // Programs.
        .executableTarget(
            name: "lgapd",
            dependencies: [
                "Service", "Provenance", "JobModel", "Locations", "Models", "BuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log")
            ]),
        .executableTarget(
            name: "lgapctl",
            dependencies: [
                "Service", "Provenance", "JobModel", "JobProcessing", "Messaging", "Models", "ImageIO", "Tensor", "Digest", "Locations", "BuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .executableTarget(
            name: "lgap-bench",
            dependencies: [
                "Tensor", "NN", "ImageIO", "Models", "JobModel", "JobProcessing", "Messaging", "Locations", "ServiceHarness",
                "Provenance", "Digest", "Service", .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .executableTarget(
            name: "lgap-stress",
            dependencies: [
                "Messaging", "Provenance", "JobModel", "Digest", "ImageIO", "LGAPFuzzSupport", "Locations", "ServiceHarness", "TestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),

        // Runs a command under a seccomp allow-list (SystemdUnitTests: lgapd under the unit's filter).
        .executableTarget(name: "seccomp-run", path: "Tests/SeccompRun", linkerSettings: [.linkedLibrary("seccomp")]),

        // Test support: goldens (engine tests) and the daemon harness (integration tests, lgap-stress).
        .target(name: "TestSupport", dependencies: ["Tensor", "NN", "Locations"], path: "Tests/TestSupport"),
        .target(
            name: "ServiceHarness", dependencies: ["Messaging", "Provenance", "JobModel", "Locations", "TestSupport"],
            path: "Tests/ServiceHarness"),

        // Tests: one target per library module, and the spawned-daemon suites.
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "NN", "TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["Tensor", "NN", "Digest", "TestSupport"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO", "Tensor", "NN", "Digest", "Messaging", "LGAPFuzzSupport", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "ImageIO", "Tensor", "NN", "Digest", "JobModel", "JobProcessing", "TestSupport"]),
        .testTarget(name: "JobModelTests", dependencies: ["JobModel", "Models", "TestSupport"]),
        .testTarget(name: "MessagingTests", dependencies: ["Messaging", "JobModel", "ImageIO"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline"]),
        .testTarget(
            name: "ProvenanceTests",
            dependencies: [
                "Provenance", "JobModel", "Models", "ImageIO", "Digest", "ServiceHarness",
                .product(name: "GRDB", package: "GRDB.swift")
            ]),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "Service", "JobModel", "Messaging", "Models", "ImageIO", "Provenance", "Pipeline",
                "JobProcessing", "TestSupport", "ServiceHarness"
            ]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "ServiceHarness", "Messaging", "Provenance", "JobModel", "Digest", "ImageIO",
                "TestSupport", "Locations"
            ])
    ],
    swiftLanguageModes: [.v6]
)
