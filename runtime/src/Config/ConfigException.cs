namespace CriShim.Runtime.Config;

/// <summary>A configuration the daemon refuses to start with; the message names the key.</summary>
public sealed class ConfigException(string message) : Exception(message);
