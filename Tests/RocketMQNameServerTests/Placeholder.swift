import Testing
// Placeholder; real tests land with the module.
