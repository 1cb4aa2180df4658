"""The one import surface for plugins: contracts, the frame-plugin base, the registry, cloud helpers and the contract
kit."""
