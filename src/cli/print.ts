/** JSON on stdout, the way every command prints it (the helper lives in util, for the simulator's live mode too). */
export { writeJson } from '../util/json-out.js';
