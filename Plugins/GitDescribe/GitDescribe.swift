// Writes GitDescription.swift (the source tree's `git describe`) into the target before every build,
// through scripts/git-describe.sh, which rewrites the file only when the description changed (so an
// unchanged tree recompiles nothing).
import Foundation
import PackagePlugin

@main
struct GitDescribe: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let root = context.package.directoryURL
        return [
            .prebuildCommand(
                displayName: "git describe → GitDescription.swift",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [root.appending(path: "scripts/git-describe.sh").path, root.path, output.path],
                outputFilesDirectory: output)
        ]
    }
}
