/**
 * The little XML the Tencent CI door speaks (`@rgrove/parse-xml`: zero dependencies, no entity
 * expansion beyond XML's own): a request document read into plain values, and answers written
 * from them. Pure.
 *
 * Reading follows what the door expects of a document: an element holding only text is that
 * text, trimmed (an empty one is ""), an element with child elements is an object keyed by their
 * names (a name repeated becomes an array), text beside child elements goes under "#text";
 * attributes, comments, declarations and processing instructions are passed over.
 */
import { XmlElement, XmlText, parseXml } from "@rgrove/parse-xml";

export type XmlValue = string | XmlObject | XmlValue[];
export interface XmlObject {
  [name: string]: XmlValue;
}

/** A document as `{ <root name>: <value> }`; null when it is not well-formed XML. */
export function readXml(xml: string): XmlObject | null {
  let root: XmlElement | null;
  try {
    root = parseXml(xml).root;
  } catch {
    return null;
  }
  return root ? { [root.name]: valueOf(root) } : null;
}

function valueOf(element: XmlElement): XmlValue {
  const children = element.children.filter((child): child is XmlElement => child instanceof XmlElement);
  const text = element.children
    .filter((child): child is XmlText => child instanceof XmlText)
    .map((child) => child.text)
    .join("")
    .trim();
  if (children.length === 0) return text;
  const object: XmlObject = {};
  for (const child of children) {
    const value = valueOf(child);
    const before = object[child.name];
    object[child.name] = before === undefined ? value : Array.isArray(before) ? [...before, value] : [before, value];
  }
  if (text !== "") object["#text"] = text;
  return object;
}

/** Writable values: objects become child elements, arrays repeat their element, the rest is text. */
export type XmlWritable =
  string | number | boolean | null | undefined | XmlWritable[] | { [name: string]: XmlWritable };

/** `document` (`{ <root name>: <value> }`) as XML, without a declaration or whitespace. */
export function writeXml(document: Record<string, XmlWritable>): string {
  return Object.entries(document)
    .map(([name, value]) => element(name, value))
    .join("");
}

function element(name: string, value: XmlWritable): string {
  if (value === undefined) return "";
  if (Array.isArray(value)) return value.map((item) => element(name, item)).join("");
  if (value !== null && typeof value === "object") return `<${name}>${writeXml(value)}</${name}>`;
  if (value === null) return `<${name}/>`;
  return `<${name}>${escapeText(String(value))}</${name}>`;
}

const escapeText = (text: string) =>
  text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
