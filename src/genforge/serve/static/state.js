/* What the page knows: the loaded models, the chosen one and what it can do. */

export const state = {
  models: [],
  detector: null,
  model: null, // the chosen ModelInfo
  caps: new Set(),
};

/** Whether the chosen model (or the server) offers `need`: a capability, or one of these. */
export function hasNeed(need) {
  if (!state.model) return false;
  if (need === "detector") return Boolean(state.detector);
  if (need === "classes") return state.caps.has("classes") && Boolean(state.model.classes);
  // a latent search (a GAN's inversion) rather than an encoder: long edits go through jobs
  if (need === "search") return state.caps.has("invert") && !state.caps.has("encode");
  return state.caps.has(need);
}

export const modelPath = (suffix) => `/v1/models/${encodeURIComponent(state.model.name)}${suffix}`;

/** The name of class `index` of the chosen model (the number where it has no names). */
export function className(index) {
  const classes = state.model && state.model.classes;
  return classes && index != null && classes[index] !== undefined ? classes[index] : index;
}

/** The chosen model's image height and width. */
export function imageSize() {
  const [, h, w] = state.model ? state.model.image_shape : [1, 28, 28];
  return { h, w };
}
