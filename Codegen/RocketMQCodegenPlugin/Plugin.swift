import PackagePlugin

// Placeholder until the generator lands: runs nothing.
@main
struct RocketMQCodegenPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] { [] }
}
