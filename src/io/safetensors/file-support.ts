// Paths for the whole-file functions (readSafetensors, writeSafetensors): imported by
// the entries that have a file system, so that the in-memory module (./whole.ts)
// never imports node:fs and browser and Worker bundles never see it.
import { setPathSupport } from './whole.js';
import { readSafetensorsFile } from './file-source.js';
import { writePreparedFile } from './file-sink.js';

setPathSupport({ read: readSafetensorsFile, write: writePreparedFile });
