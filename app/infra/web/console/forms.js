// Sending a form's JSON payload: one place for the parse error and the API's error.
import {post} from "./api.js";
import {fill, notice} from "./dom.js";

/** POST the payload text to the API; on a parse error or an error answer, show it in
 * `result` and return null, else return the answer. */
export async function submitJson(result, apiPath, text, key) {
  let payload;
  try {
    payload = JSON.parse(text || "{}");
  } catch (error) {
    fill(result, notice("error", `The payload is not JSON: ${error.message}`));
    return null;
  }
  try {
    return await post(apiPath, payload, key);
  } catch (error) {
    fill(result, notice("error", `${error.status ?? ""} ${error.message}`));
    return null;
  }
}
