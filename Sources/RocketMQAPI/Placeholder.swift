// Generated stubs land here via the Codegen plugin.
public enum RocketMQAPIPlaceholder {}
