"""A @rawhttp scoring script using the Flask Response attributes real scripts use (mimetype, headers...)."""

from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    case = request.args.get("case", "")
    if case == "image":
        resp = AMLResponse(b"\x89PNG\r\n\x1a\n\x00\x01", 200)
        resp.mimetype = "image/jpg"
        return resp
    if case == "allow":
        resp = AMLResponse("", 200)
        resp.headers["Allow"] = "OPTIONS, GET, POST"
        resp.headers["Access-Control-Allow-Methods"] = "OPTIONS, GET, POST"
        return resp
    if case == "status":
        resp = AMLResponse("created", 200)
        resp.status_code = 201
        resp.headers.add("X-Seen-Status", resp.status)
        return resp
    if case == "status_line":
        resp = AMLResponse("teapot", 200)
        resp.status = "299 Odd Reason"
        resp.headers.add("X-Seen-Status", f"{resp.status}|{resp.status_code}")
        return resp
    if case == "content_type":
        resp = AMLResponse("<a/>", 200)
        resp.content_type = "application/xml"
        resp.headers.add("X-Mimetype", resp.mimetype)
        return resp
    if case == "text_mimetype":
        resp = AMLResponse("plain", 200)
        resp.mimetype = "text/plain"
        return resp
    if case == "data":
        resp = AMLResponse("first", 200)
        resp.set_data("second, longer")
        resp.headers["X-Got"] = resp.get_data(as_text=True)
        resp.data = resp.get_data() + b" and third"
        resp.headers["X-Len"] = str(len(resp.data))
        return resp
    if case == "passthrough":
        resp = AMLResponse(b"raw bytes", 200)
        resp.direct_passthrough = True
        resp.mimetype = "application/octet-stream"
        return resp
    if case == "headers":
        resp = AMLResponse("h", 202, {"X-Multi": "a, b", "Content-Type": "text/csv"})
        resp.headers.add("X-Added", "1")
        resp.headers.set("x-added", "2")
        resp.headers.add("X-Gone", "x")
        del resp.headers["x-gone"]
        resp.headers["X-Has"] = "yes" if "x-multi" in resp.headers else "no"
        resp.headers["X-List"] = "|".join(resp.headers.getlist("X-Multi"))
        resp.headers["X-Get"] = resp.headers.get("content-type", "none")
        resp.headers["X-Missing"] = resp.headers.get("X-Nope", "default")
        resp.headers.extend({"X-Ext": "e"})
        return resp
    if case == "failed":
        resp = AMLResponse({"error": "bad"}, 503, json_str=True)
        resp.headers["Retry-After"] = "5"
        return resp
    if case == "json":
        return AMLResponse({"a": [1, 2]}, 200, json_str=True)
    return AMLResponse(None, 200)
