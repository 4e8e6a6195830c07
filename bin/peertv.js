#!/usr/bin/env node
// Runs the TypeScript CLI without a build step (tsx registers its loader).
import { register } from 'tsx/esm/api';
register();
await import('../cli/main.ts');
