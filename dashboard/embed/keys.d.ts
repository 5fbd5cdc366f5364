/**
 * `<keyward-keys>`: API key self-service for one owner, through a portal session
 * (docs/embedding.md). Importing the module defines the element in a browser.
 */
export declare class KeywardKeys extends HTMLElement {
  static observedAttributes: string[];
  /** The portal session's token (`kwp_…`): also the `token` attribute. */
  token: string | null;
  /** The Keyward base URL (the `api` attribute); empty: this page's origin. */
  readonly api: string;
  /** Reloads the session, the keys and the production key requests. */
  refresh(): Promise<void>;
}

/** Defines the element under `name` (default `keyward-keys`), unless already defined. */
export declare function defineKeywardKeys(name?: string): void;

declare global {
  interface HTMLElementTagNameMap {
    "keyward-keys": KeywardKeys;
  }
}
