//! `GET /openapi.json`, generated from the handlers, and the API page at
//! `/docs` (bundled, works offline).

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use super::{facts, health, jobs_api};

#[derive(OpenApi)]
#[openapi(
    modifiers(&FormFieldNames, &DownloadQuality),
    info(
        title = "pixpress",
        description = "Image compression job queue and real-time sharing. WebSocket protocols (/ws, /ws/share/{room}, /ws/img2img, /ws/chat) are described in the project's docs."
    ),
    paths(
        jobs_api::root,
        jobs_api::upload,
        jobs_api::status,
        jobs_api::download,
        jobs_api::queue,
        health::healthz,
        health::readyz
    ),
    components(schemas(
        jobs_api::ServiceInfo,
        jobs_api::QueueView,
        facts::ClientFacts,
        facts::AuthFacts,
        facts::AutoFacts,
        facts::ShareFacts,
        facts::ChatFacts,
        jobs_api::UploadAnswer,
        jobs_api::VariantView,
        jobs_api::QueuedView,
        jobs_api::UploadForm,
        jobs_api::ErrorBody,
        jobs_api::NotReadyBody
    ))
)]
pub struct ApiDoc;

/// The upload form ignores fields it does not know, but a field's name must
/// be a plain token: a multipart header with control characters is
/// malformed (400) whatever its field is.
struct FormFieldNames;

impl Modify for FormFieldNames {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(form))) = components.schemas.get_mut("UploadForm") {
            let names = ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(jobs_api::FIELD_NAME_PATTERN))
                .build();
            form.property_names = Some(Box::new(Schema::Object(names)));
        }
    }
}

/// `quality` in the download query is a number or `auto`, as in the
/// upload form (the tuple form of `params` takes one type only).
struct DownloadQuality;

impl Modify for DownloadQuality {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let operation = openapi
            .paths
            .paths
            .get_mut("/download/{md5}")
            .and_then(|item| item.get.as_mut());
        let Some(parameters) = operation.and_then(|op| op.parameters.as_mut()) else {
            return;
        };
        for parameter in parameters.iter_mut().filter(|p| p.name == "quality") {
            parameter.schema = Some(RefOr::T(jobs_api::quality_schema()));
        }
    }
}

pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn quality_is_a_number_or_auto_in_the_form_and_the_download_query() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let form = &schemas["UploadForm"]["properties"];
        assert_eq!(form["quality"]["oneOf"][0]["maximum"], 100);
        assert_eq!(form["quality"]["oneOf"][1]["enum"], json!(["auto"]));
        assert_eq!(form["target"]["minimum"], 30);
        let params = doc["paths"]["/download/{md5}"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let quality = params.iter().find(|p| p["name"] == "quality").unwrap();
        assert_eq!(quality["schema"]["oneOf"][1]["enum"], json!(["auto"]));
        let view = &schemas["VariantView"]["properties"];
        for field in [
            "score",
            "target",
            "target_met",
            "budget_limited",
            "score_sampled",
        ] {
            assert!(view.get(field).is_some(), "{field}");
        }
        let types: Vec<&Value> = view["quality"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["type"])
            .collect();
        assert_eq!(types, [&json!("integer"), &json!("string"), &json!("null")]);
        let headers = &doc["paths"]["/download/{md5}"]["get"]["responses"]["200"]["headers"];
        assert!(headers.get("X-Pixpress-Score").is_some(), "{headers}");
    }
}
